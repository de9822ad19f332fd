package watch_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/watch"
)

// The Cache's first list lands on a connection that swallows it (as on a blackholed
// endpoint); later requests would be answered. The Cache gives up on that request, as
// it does on a silent watch, and lists again.
func TestCacheListThatHangsIsRetried(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	p := etcdtest.Prefix(t)
	admin := etcdtest.Client(t)
	_, err := admin.Put(ctx, p+"a", "1")
	require.NoError(t, err)

	cli, faults := etcdtest.FaultClient(t)
	var once atomic.Bool
	faults.Stall(func(_ string, req any) bool {
		_, isRange := req.(*pb.RangeRequest)
		return isRange && once.CompareAndSwap(false, true)
	})
	const interval = 100 * time.Millisecond
	c, err := watch.NewCache(cli, p, watch.WithProgressInterval(interval))
	require.NoError(t, err)
	defer c.Close()
	// Given up after six progress intervals; deadline 10x that.
	require.NoError(t, c.WaitReady(etcdtest.Context(t, 60*interval)), "the Cache never retried its list")
	assert.Equal(t, 1, faults.Hits())
	_, ok := c.Get(p + "a")
	assert.True(t, ok)
}

// The same for a Watcher's lookup of the current revision ("from now").
func TestWatcherRevisionLookupThatHangsIsRetried(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	p := etcdtest.Prefix(t)
	admin := etcdtest.Client(t)
	cli, faults := etcdtest.FaultClient(t)
	var once atomic.Bool
	faults.Stall(func(_ string, req any) bool {
		_, isRange := req.(*pb.RangeRequest)
		return isRange && once.CompareAndSwap(false, true)
	})
	const interval = 100 * time.Millisecond
	w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithProgressInterval(interval))
	require.NoError(t, err)
	defer w.Close()
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, 1, faults.Hits()) }, 10*time.Second, 10*time.Millisecond)
	// Keep writing until the Watcher, past its stalled lookup, delivers.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, err := admin.Put(ctx, p+"k", "v")
		if !assert.NoError(ct, err) {
			return
		}
		select {
		case ev := <-w.Events():
			assert.Equal(ct, p+"k", ev.KV.Key)
		case <-time.After(interval):
			ct.Errorf("no event yet")
		}
	}, 60*interval, 10*time.Millisecond)
}
