package watch_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/watch"
)

// consumer applies a Watcher's events to a map the way a careful user would, and
// records anything delivered twice or out of order.
type consumer struct {
	mu      sync.Mutex
	state   map[string]string
	seen    map[string]int // puts per key (every key is written once in these tests)
	resyncs int
	lastRev int64
	dups    []string
	back    []string
	done    chan struct{}
}

func consume(w *watch.Watcher) *consumer {
	c := &consumer{state: map[string]string{}, seen: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ev := range w.Events() {
			c.mu.Lock()
			if ev.Revision < c.lastRev || (ev.Type == watch.Resync && ev.Revision == c.lastRev) {
				c.back = append(c.back, fmt.Sprintf("%v at %d after %d", ev.Type, ev.Revision, c.lastRev))
			}
			c.lastRev = ev.Revision
			switch ev.Type {
			case watch.Put:
				c.seen[ev.KV.Key]++
				if c.seen[ev.KV.Key] > 1 {
					c.dups = append(c.dups, ev.KV.Key)
				}
				c.state[ev.KV.Key] = string(ev.KV.Value)
			case watch.Delete:
				delete(c.state, ev.KV.Key)
			case watch.Resync:
				c.resyncs++
				c.state = map[string]string{}
				for _, kv := range ev.State {
					c.state[kv.Key] = string(kv.Value)
				}
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *consumer) snapshot() (state map[string]string, seen, resyncs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	state = make(map[string]string, len(c.state))
	for k, v := range c.state {
		state[k] = v
	}
	return state, len(c.seen), c.resyncs
}

func (c *consumer) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Empty(t, c.dups, "events delivered twice")
	assert.Empty(t, c.back, "events out of order")
}

// waitSeen waits until at least n distinct keys were put, failing with the count it
// reached.
func (c *consumer) waitSeen(t *testing.T, n int, deadline time.Duration) {
	t.Helper()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, seen, _ := c.snapshot()
		assert.GreaterOrEqual(ct, seen, n, "keys seen")
	}, deadline, 20*time.Millisecond)
}

func currentRev(ctx context.Context, t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(ctx, "/")
	require.NoError(t, err)
	return resp.Header.Revision
}

// TestFaultClusterWatch runs the watch fault checks on one 3-node cluster.
func TestFaultClusterWatch(t *testing.T) {
	// In parallel with the tests that wait on progress intervals; one parallel test at a
	// time starts a cluster (the etcd test framework allows one at a time).
	t.Parallel()
	watch.ClusterMu.Lock()
	t.Cleanup(watch.ClusterMu.Unlock) // after the cluster's own cleanups
	// Half a second without a leader's heartbeat before a follower campaigns, not the
	// default 100ms: a loaded machine delays heartbeats by hundreds of milliseconds,
	// and each election it then causes drops the proposals in flight, so that one of the
	// 500 puts below timed out ("request timed out"); a put cannot be retried here, as
	// the watchers must see each key put once.
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	const n = 500

	t.Run("Resume500WhileDisconnected", func(t *testing.T) {
		ctx := etcdtest.Context(t, 80*time.Second)
		i := c.Leader() // the member the watcher talks to; writes go through another
		cli, writer := c.Client(i), c.Client((i+1)%3)
		p := "/resume/"
		w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithStartRevision(currentRev(ctx, t, writer)+1))
		require.NoError(t, err)
		con := consume(w)

		_, err = writer.Put(ctx, p+"first", "x")
		require.NoError(t, err)
		con.waitSeen(t, 1, 10*time.Second)

		c.PauseConnections(i)
		defer c.ResumeConnections(i) // also when a step below fails: the next sub-test needs i
		for k := range n {
			_, err := writer.Put(ctx, fmt.Sprintf("%s%03d", p, k), fmt.Sprint(k))
			require.NoError(t, err)
		}
		c.ResumeConnections(i)

		con.waitSeen(t, n+1, 30*time.Second)
		// One more write proves nothing else was queued behind.
		_, err = writer.Put(ctx, p+"last", "x")
		require.NoError(t, err)
		con.waitSeen(t, n+2, 10*time.Second)
		require.NoError(t, w.Close())
		<-con.done
		con.check(t)
		state, seen, resyncs := con.snapshot()
		assert.Equal(t, n+2, seen)
		assert.Zero(t, resyncs)
		assert.Equal(t, etcdState(ctx, t, writer, p), state)
	})

	t.Run("CompactedWhileDisconnectedResyncs", func(t *testing.T) {
		ctx := etcdtest.Context(t, 80*time.Second)
		i := (c.Leader() + 1) % 3
		cli, writer := c.Client(i), c.Client((i+1)%3)
		p := "/compact/"
		for k := range 20 {
			_, err := writer.Put(ctx, fmt.Sprintf("%sold%02d", p, k), "old")
			require.NoError(t, err)
		}
		w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithInitialState())
		require.NoError(t, err)
		con := consume(w)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			_, _, r := con.snapshot()
			assert.Equal(ct, 1, r, "resyncs")
		}, 10*time.Second, 10*time.Millisecond)

		c.PauseConnections(i)
		defer c.ResumeConnections(i) // also when a step below fails: the next sub-test needs i
		for k := range 20 {
			if k%2 == 0 {
				_, err = writer.Delete(ctx, fmt.Sprintf("%sold%02d", p, k))
			} else {
				_, err = writer.Put(ctx, fmt.Sprintf("%sold%02d", p, k), "changed")
			}
			require.NoError(t, err)
			_, err = writer.Put(ctx, fmt.Sprintf("%snew%02d", p, k), "new")
			require.NoError(t, err)
		}
		c.Compact(ctx, currentRev(ctx, t, writer))
		c.ResumeConnections(i)

		want := etcdState(ctx, t, writer, p)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			state, _, resyncs := con.snapshot()
			assert.Equal(ct, 2, resyncs, "resyncs")
			assert.Equal(ct, want, state)
		}, 30*time.Second, 20*time.Millisecond)
		// And it carries on watching after the resync.
		_, err = writer.Put(ctx, p+"after", "x")
		require.NoError(t, err)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			state, _, _ := con.snapshot()
			assert.Equal(ct, "x", state[p+"after"])
		}, 10*time.Second, 10*time.Millisecond)
		require.NoError(t, w.Close())
		<-con.done
		con.check(t)
		state, _, _ := con.snapshot()
		assert.Equal(t, etcdState(ctx, t, writer, p), state)
	})

	t.Run("CacheConvergesAfterRestartAndCompaction", func(t *testing.T) {
		ctx := etcdtest.Context(t, 80*time.Second)
		i := c.Leader()
		cli := c.Client(i)
		p := "/cache/"
		for k := range 30 {
			_, err := cli.Put(ctx, fmt.Sprintf("%s%02d", p, k), "v0")
			require.NoError(t, err)
		}
		cache, err := watch.NewCache(cli, p)
		require.NoError(t, err)
		defer cache.Close()
		log := newChangeLog()
		defer cache.Subscribe(log.apply)()
		require.NoError(t, cache.WaitReady(ctx))
		require.False(t, cache.Stale())

		c.StopMember(i)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.True(ct, cache.Stale(), "Stale while the member is down")
		}, 10*time.Second, 10*time.Millisecond)
		writer := c.Client((i + 1) % 3)
		for k := range 30 {
			key := fmt.Sprintf("%s%02d", p, k)
			switch k % 3 {
			case 0:
				_, err = writer.Delete(ctx, key)
			case 1:
				_, err = writer.Put(ctx, key, "v1")
			}
			require.NoError(t, err)
		}
		_, err = writer.Put(ctx, p+"added", "v1")
		require.NoError(t, err)
		c.Compact(ctx, currentRev(ctx, t, writer))
		c.RestartMember(i)

		want := etcdState(ctx, t, writer, p)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.False(ct, cache.Stale(), "stale")
			assert.Equal(ct, want, cacheState(cache))
		}, 30*time.Second, 20*time.Millisecond)
		assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.Equal(ct, want, log.snapshot(), "subscribers see exactly the differences")
		}, 10*time.Second, 10*time.Millisecond)
		log.mu.Lock()
		assert.True(t, log.order, "changes in revision order")
		log.mu.Unlock()

		r, err := writer.Put(ctx, p+"later", "v2")
		require.NoError(t, err)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.GreaterOrEqual(ct, cache.Revision(), r.Header.Revision)
		}, 10*time.Second, 10*time.Millisecond)
		assert.Equal(t, etcdState(ctx, t, writer, p), cacheState(cache))
	})

	t.Run("WatchAcrossLeaderStop", func(t *testing.T) {
		ctx := etcdtest.Context(t, 80*time.Second)
		cli, writer := c.ClusterClient(), c.ClusterClient()
		p := "/leader/"
		w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithStartRevision(currentRev(ctx, t, writer)+1))
		require.NoError(t, err)
		con := consume(w)
		written := 0
		put := func() {
			for {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := writer.Put(pctx, fmt.Sprintf("%s%03d", p, written), "v")
				cancel()
				if err == nil {
					written++
					return
				}
				// No leader yet: pause instead of spinning.
				select {
				case <-ctx.Done():
					require.NoError(t, ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
		for range 50 {
			put()
		}
		stopped := c.StopLeader()
		for range 50 {
			put()
		}
		c.RestartMember(stopped)
		for range 50 {
			put()
		}
		con.waitSeen(t, written, 30*time.Second)
		require.NoError(t, w.Close())
		<-con.done
		con.check(t)
		_, seen, _ := con.snapshot()
		assert.Equal(t, written, seen)
	})

	t.Run("BlackholedEndpointIsAbandoned", func(t *testing.T) {
		ctx := etcdtest.Context(t, 80*time.Second)
		i, j := c.Leader(), (c.Leader()+1)%3
		cli := c.Client(i) // the watch opens through i
		writer := c.Client((i + 2) % 3)
		p := "/blackhole/"
		w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithStartRevision(currentRev(ctx, t, writer)+1), watch.WithLogger(zaptest.NewLogger(t)))
		require.NoError(t, err)
		con := consume(w)
		_, err = writer.Put(ctx, p+"first", "v")
		require.NoError(t, err)
		con.waitSeen(t, 1, 10*time.Second)
		// i now swallows everything; j becomes reachable too.
		c.Blackhole(i)
		cli.SetEndpoints(c.Members[i].GRPCURL, c.Members[j].GRPCURL)
		for k := range 20 {
			_, err := writer.Put(ctx, fmt.Sprintf("%s%02d", p, k), "v")
			require.NoError(t, err)
		}
		// Abandoned after six silent progress intervals (3s), then reopened: deadline 30s.
		con.waitSeen(t, 21, 30*time.Second)
		c.Unblackhole(i)
		require.NoError(t, w.Close())
		<-con.done
		con.check(t)
	})

	t.Run("CacheStaleWhilePartitioned", func(t *testing.T) {
		ctx := etcdtest.Context(t, 80*time.Second)
		i := (c.Leader() + 1) % 3
		cli, writer := c.Client(i), c.Client((i+1)%3)
		p := "/partition/"
		cache, err := watch.NewCache(cli, p)
		require.NoError(t, err)
		defer cache.Close()
		require.NoError(t, cache.WaitReady(ctx))
		c.Partition(i)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.True(ct, cache.Stale(), "a member without a leader is not a source of truth")
		}, 15*time.Second, 20*time.Millisecond)
		var last int64
		for k := range 10 {
			r, err := writer.Put(ctx, fmt.Sprintf("%s%02d", p, k), "v")
			require.NoError(t, err)
			last = r.Header.Revision
		}
		c.Heal(i)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.False(ct, cache.Stale(), "stale")
			assert.GreaterOrEqual(ct, cache.Revision(), last)
		}, 30*time.Second, 20*time.Millisecond)
		assert.Equal(t, etcdState(ctx, t, writer, p), cacheState(cache))
	})
}
