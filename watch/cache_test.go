package watch_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/watch"
)

// changeLog is a subscriber that rebuilds the state from Changes alone.
type changeLog struct {
	mu      sync.Mutex
	state   map[string]string
	changes []watch.Change
	lastRev int64
	order   bool // revisions never went backwards
}

func newChangeLog() *changeLog { return &changeLog{state: map[string]string{}, order: true} }

func (l *changeLog) apply(ch watch.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, ch)
	if ch.Revision < l.lastRev {
		l.order = false
	}
	l.lastRev = ch.Revision
	if ch.New == nil {
		delete(l.state, ch.Key)
	} else {
		l.state[ch.Key] = string(ch.New.Value)
	}
}

// seed adds the keys of a listing that the log has not heard of.
func (l *changeLog) seed(kvs []watch.KV) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, kv := range kvs {
		if _, ok := l.state[kv.Key]; !ok {
			l.state[kv.Key] = string(kv.Value)
		}
	}
}

func (l *changeLog) snapshot() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.state))
	for k, v := range l.state {
		out[k] = v
	}
	return out
}

func cacheState(c *watch.Cache) map[string]string {
	out := map[string]string{}
	for _, kv := range c.List("") {
		out[kv.Key] = string(kv.Value)
	}
	return out
}

func TestCacheListsWatchesAndNotifies(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	for _, k := range []string{"svc/b", "svc/a", "cfg/x"} {
		_, err := cli.Put(ctx, p+k, k)
		require.NoError(t, err)
	}
	c, err := watch.NewCache(cli, p)
	require.NoError(t, err)
	defer c.Close()
	log := newChangeLog()
	cancel := c.Subscribe(log.apply)
	defer cancel()

	require.NoError(t, c.WaitReady(ctx))
	// Subscribed before or after Ready: either way, Subscribe then List is the whole state.
	log.seed(c.List(""))
	assertClosed(t, c.Ready())
	kv, ok := c.Get(p + "svc/a")
	require.True(t, ok)
	assert.Equal(t, "svc/a", string(kv.Value))
	_, ok = c.Get(p + "svc/zzz")
	assert.False(t, ok)
	assert.Equal(t, []string{p + "svc/a", p + "svc/b"}, keysOf(c.List(p+"svc/")))
	assert.Equal(t, []string{p + "cfg/x", p + "svc/a", p + "svc/b"}, keysOf(c.List("")))
	assert.Empty(t, c.List(p+"nothing/"))
	assert.Equal(t, 3, c.Len())
	assert.Equal(t, etcdState(ctx, t, cli, p), log.snapshot())

	r, err := cli.Txn(ctx).Then(
		clientv3.OpPut(p+"svc/c", "new"),
		clientv3.OpPut(p+"svc/a", "changed"),
		clientv3.OpDelete(p+"cfg/x"),
	).Commit()
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.Revision() >= r.Header.Revision }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, etcdState(ctx, t, cli, p), cacheState(c))
	// Subscribers are told right after the change is readable.
	want := etcdState(ctx, t, cli, p)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, want, log.snapshot()) }, 10*time.Second, 5*time.Millisecond)
	assert.False(t, c.Stale())

	log.mu.Lock()
	tail := log.changes[len(log.changes)-3:]
	log.mu.Unlock()
	for _, ch := range tail {
		assert.Equal(t, r.Header.Revision, ch.Revision)
	}
	assert.Nil(t, tail[0].Old, "svc/c added")
	require.NotNil(t, tail[1].Old, "svc/a updated")
	assert.Equal(t, "svc/a", string(tail[1].Old.Value))
	assert.Nil(t, tail[2].New, "cfg/x removed")

	// After cancel, no more calls.
	cancel()
	n := len(log.changes)
	pr, err := cli.Put(ctx, p+"svc/d", "d")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.Revision() >= pr.Header.Revision }, 10*time.Second, 5*time.Millisecond)
	log.mu.Lock()
	assert.Len(t, log.changes, n)
	log.mu.Unlock()

	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.Err(), watch.ErrClosed)
	assert.True(t, c.Stale())
	_, ok = c.Get(p + "svc/d")
	assert.True(t, ok, "state stays readable after Close")
}

func TestCacheWaitReadyHonoursContext(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(0)
	c.Blackhole(0)
	defer c.Unblackhole(0)
	cache, err := watch.NewCache(cli, "/p/")
	require.NoError(t, err)
	defer cache.Close()
	ctx := etcdtest.Context(t, 300*time.Millisecond)
	require.ErrorIs(t, cache.WaitReady(ctx), ctx.Err())
	assert.True(t, cache.Stale())
	assert.Zero(t, cache.Revision())
}

func TestCacheManyKeys(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	p := etcdtest.Prefix(t)
	c, err := watch.NewCache(cli, p)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(ctx))
	var last int64
	for i := range 300 {
		r, err := cli.Put(ctx, fmt.Sprintf("%s%03d", p, (i*37)%300), fmt.Sprint(i))
		require.NoError(t, err)
		last = r.Header.Revision
	}
	for i := 0; i < 300; i += 3 {
		r, err := cli.Delete(ctx, fmt.Sprintf("%s%03d", p, i))
		require.NoError(t, err)
		last = r.Header.Revision
	}
	require.Eventually(t, func() bool { return c.Revision() >= last }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, etcdState(ctx, t, cli, p), cacheState(c))
	keys := keysOf(c.List(""))
	assert.IsIncreasing(t, keys)
	assert.Len(t, keys, 200)
}

func assertClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Error("channel not closed")
	}
}

// A subscriber may close the Cache: Close then returns without waiting for the
// goroutine that is running the subscriber, which ends right after.
func TestCacheCloseFromSubscriber(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	c, err := watch.NewCache(cli, p)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(ctx))
	closed := make(chan error, 1)
	defer c.Subscribe(func(watch.Change) {
		select {
		case closed <- c.Close():
		default:
		}
	})()
	_, err = cli.Put(ctx, p+"a", "1")
	require.NoError(t, err)
	select {
	case err := <-closed:
		assert.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("Close from a subscriber did not return")
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.ErrorIs(ct, c.Err(), watch.ErrClosed)
	}, 10*time.Second, 10*time.Millisecond)
	assert.NoError(t, c.Close(), "idempotent")
}
