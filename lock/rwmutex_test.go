package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// An RWMutex value is one participant: while its read lock is being acquired, its write
// lock cannot be (and the other way round). Lock then returns ErrBusy at once, instead
// of queueing a second key of ours behind the first and waiting behind ourselves.
func TestRWMutexOneSideAtATime(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "rw"
	other, err := lock.NewRWMutex(cli, key)
	require.NoError(t, err)
	defer other.Close()
	rw, err := lock.NewRWMutex(cli, key)
	require.NoError(t, err)
	defer rw.Close()

	require.NoError(t, other.Lock(ctx))
	rgot := make(chan error, 1)
	go func() { rgot <- rw.RLock(ctx) }() // waits behind other's write lock
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.EqualValues(ct, 1, etcdtest.Count(cli, key+"/r/"))
	}, 5*time.Second, 10*time.Millisecond)

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	assert.ErrorIs(t, rw.Lock(wctx), lock.ErrBusy, "Lock while RLock of the same value waits")
	assert.ErrorIs(t, rw.TryLock(wctx), lock.ErrBusy)
	assert.EqualValues(t, 1, etcdtest.Count(cli, key+"/w/"), "only other's write key")

	require.NoError(t, other.Unlock(ctx))
	require.NoError(t, <-rgot)
	assert.ErrorIs(t, rw.Lock(wctx), lock.ErrBusy, "Lock while the same value holds a read lock")
	require.NoError(t, rw.RUnlock(ctx))
	require.NoError(t, rw.Lock(ctx))
	require.NoError(t, rw.Unlock(ctx))
}
