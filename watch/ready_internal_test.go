package watch

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// withBeforeStart runs fn in NewCache before the Cache's goroutine starts.
func withBeforeStart(fn func(*Cache)) Option {
	return optionFunc(func(o *options) { o.beforeStart = fn })
}

// stateLog rebuilds a key → value state from Changes.
type stateLog struct {
	mu    sync.Mutex
	state map[string]string
}

func (l *stateLog) apply(ch Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == nil {
		l.state = map[string]string{}
	}
	if ch.New == nil {
		delete(l.state, ch.Key)
	} else {
		l.state[ch.Key] = string(ch.New.Value)
	}
}

func (l *stateLog) snapshot() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	for k, v := range l.state {
		out[k] = v
	}
	return out
}

// Ready closes only after the subscribers added before it were told the first listing,
// including subscribers added while that was going on: after WaitReady, their state
// equals List.
func TestCacheTellsSubscribersBeforeReady(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	const n = 20
	for i := range n {
		_, err := cli.Put(ctx, fmt.Sprintf("%s%02d", p, i), "v")
		require.NoError(t, err)
	}

	var first, second stateLog
	var mu sync.Mutex
	readyDuringFirst := false
	var cancels []func()
	c, err := NewCache(cli, p, withBeforeStart(func(c *Cache) {
		// Subscribed before the first listing, for certain.
		var once sync.Once
		cancels = append(cancels, c.Subscribe(func(ch Change) {
			select {
			case <-c.Ready():
				if len(first.snapshot()) < n {
					mu.Lock()
					readyDuringFirst = true
					mu.Unlock()
				}
			default:
			}
			first.apply(ch)
			once.Do(func() {
				// A subscriber added while the first listing is being told.
				cancel := c.Subscribe(second.apply)
				mu.Lock()
				cancels = append(cancels, cancel)
				mu.Unlock()
			})
		}))
	}))
	require.NoError(t, err)
	defer c.Close()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, cancel := range cancels {
			cancel()
		}
	}()

	require.NoError(t, c.WaitReady(ctx))
	want := map[string]string{}
	for _, kv := range c.List("") {
		want[kv.Key] = string(kv.Value)
	}
	require.Len(t, want, n)
	assert.Equal(t, want, first.snapshot(), "told the first listing before Ready")
	assert.Equal(t, want, second.snapshot(), "a subscriber added during the telling is told too")
	mu.Lock()
	assert.False(t, readyDuringFirst, "Ready closed while the first listing was being told")
	mu.Unlock()
}
