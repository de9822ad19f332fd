package ownership

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A request that fails at once leaves no more than two in flight when the next are sent.
func TestHedgedAtMostTwo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var live []context.Context
	var calls, worst atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = hedged(ctx, time.Millisecond, func(r context.Context) (int, error) {
			if calls.Add(1) == 2 {
				return 0, errors.New("fast error")
			}
			mu.Lock()
			live = append(live, r)
			n := int32(0)
			for _, c := range live {
				if c.Err() == nil {
					n++
				}
			}
			if n > worst.Load() {
				worst.Store(n)
			}
			mu.Unlock()
			<-r.Done()
			return 0, r.Err()
		}, nil)
	}()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.GreaterOrEqual(ct, calls.Load(), int32(7))
	}, 10*time.Second, time.Millisecond)
	cancel()
	<-done
	assert.LessOrEqual(t, worst.Load(), int32(2))
}
