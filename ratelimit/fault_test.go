package ratelimit_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/ratelimit"
)

// TestFaultFleetRate runs 5 instances, on a 3-node cluster, at a shared limit of 200/s
// for 10s, every instance asking for far more, and checks the admitted rate against the
// documented bound: over any window of length T the fleet admits at most
// limit·T + burst + instances·batch.
func TestFaultFleetRate(t *testing.T) {
	const (
		limit     = 200
		instances = 5
		callers   = 4 // goroutines per instance
		window    = 10 * time.Second
	)
	c := etcdtest.NewCluster(t, 3)
	key := etcdtest.Prefix(t) + "api"
	var ls []*ratelimit.Limiter
	for i := range instances {
		l, err := ratelimit.New(c.Client(i%3), key, limit, time.Second)
		require.NoError(t, err)
		defer l.Close()
		ls = append(ls, l)
	}
	burst, batch := limit, limit/20 // the defaults

	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	var at []time.Duration
	var wg sync.WaitGroup
	for _, l := range ls {
		for range callers {
			wg.Go(func() {
				for l.Wait(ctx) == nil {
					d := time.Since(start)
					mu.Lock()
					at = append(at, d)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(at)

	bound := func(T time.Duration) int { return int(limit*T.Seconds()) + burst + instances*batch }
	rate := float64(len(at)) / elapsed.Seconds()
	t.Logf("admitted %d in %v (%.0f/s; limit %d/s); bound over the run %d", len(at), elapsed.Round(time.Millisecond), rate, limit, bound(elapsed))
	assert.LessOrEqual(t, len(at), bound(elapsed), "admitted over the whole run")
	// Every 1s window too.
	most, j := 0, 0
	for i := range at {
		for at[i]-at[j] >= time.Second {
			j++
		}
		most = max(most, i-j+1)
	}
	t.Logf("most admitted in any 1s window: %d; bound %d", most, bound(time.Second))
	assert.LessOrEqual(t, most, bound(time.Second), "admitted in a 1s window")
	// And the limiter does admit: at least half the limit, on a loaded machine.
	assert.GreaterOrEqual(t, rate, limit/2.0)
}
