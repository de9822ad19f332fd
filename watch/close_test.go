package watch_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/watch"
)

// A subscriber that closes the Cache: no subscriber is called after that Close
// returned, not even for the rest of the revision being delivered.
func TestCacheNoCallsAfterCloseFromSubscriber(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	c, err := watch.NewCache(cli, p)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(ctx))

	var closed atomic.Bool
	var after, others atomic.Int32
	defer c.Subscribe(func(watch.Change) {
		if closed.Load() {
			after.Add(1)
			return
		}
		c.Close()
		closed.Store(true)
	})()
	defer c.Subscribe(func(watch.Change) {
		if closed.Load() {
			others.Add(1)
		}
	})()
	// One revision, three keys.
	_, err = cli.Txn(ctx).Then(
		clientv3.OpPut(p+"a", "1"), clientv3.OpPut(p+"b", "2"), clientv3.OpPut(p+"c", "3"),
	).Commit()
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.True(ct, closed.Load()) }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, c.Close()) // from here: waits for the Cache's goroutine to end
	assert.Zero(t, after.Load(), "the closing subscriber was called after it closed the Cache")
	assert.Zero(t, others.Load(), "another subscriber was called after the Cache was closed")
}
