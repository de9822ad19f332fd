package barrier_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/barrier"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestRejectsBadInput(t *testing.T) {
	cli := etcdtest.Client(t)
	_, err := barrier.New(nil, "/b")
	assert.ErrorIs(t, err, barrier.ErrInvalidArgument)
	_, err = barrier.New(cli, "")
	assert.ErrorIs(t, err, barrier.ErrInvalidArgument)
	_, err = barrier.New(cli, "/b", nil)
	assert.ErrorIs(t, err, barrier.ErrInvalidArgument)
	_, err = barrier.New(cli, "/b", barrier.WithTTL(500*time.Millisecond))
	assert.ErrorIs(t, err, barrier.ErrInvalidArgument)
	// Rounded up to seconds it overflowed to a negative TTL, which etcd takes as its
	// minimum: the lease then expired between keep-alives.
	_, err = barrier.New(cli, "/b", barrier.WithTTL(math.MaxInt64))
	assert.ErrorIs(t, err, barrier.ErrInvalidArgument)
	_, err = barrier.NewDouble(cli, "/b", 0)
	assert.ErrorIs(t, err, barrier.ErrInvalidArgument)
	_, err = barrier.NewDouble(nil, "/b", 2)
	assert.ErrorIs(t, err, barrier.ErrInvalidArgument)
	_, err = barrier.NewDouble(cli, "/b", 2, nil)
	assert.ErrorIs(t, err, barrier.ErrInvalidArgument)
}

func TestBarrierHoldWaitRelease(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "gate"
	b, err := barrier.New(cli, key)
	require.NoError(t, err)
	defer b.Close()
	other, err := barrier.New(etcdtest.Client(t), key)
	require.NoError(t, err)
	defer other.Close()

	require.NoError(t, other.Wait(ctx), "an unheld barrier does not block")
	require.ErrorIs(t, other.Release(ctx), barrier.ErrNotHeld)
	require.NoError(t, b.Hold(ctx))
	require.NoError(t, b.Hold(ctx), "holding again is a no-op")
	require.ErrorIs(t, other.Hold(ctx), barrier.ErrHeld)
	require.ErrorIs(t, other.Release(ctx), barrier.ErrNotHeld)

	released := make(chan error, 1)
	go func() { released <- other.Wait(ctx) }()
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	assert.ErrorIs(t, other.Wait(wctx), context.DeadlineExceeded, "Wait blocks while held")
	cancel()
	require.NoError(t, b.Release(ctx))
	require.NoError(t, <-released)
	assert.NoError(t, b.Err())
}

func TestBarrierHolderCrashReleases(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	key := etcdtest.Prefix(t) + "gate"
	crashing, err := etcdtest.NewClient()
	require.NoError(t, err)
	b, err := barrier.New(crashing, key, barrier.WithTTL(time.Second))
	require.NoError(t, err)
	require.NoError(t, b.Hold(ctx))
	waiter, err := barrier.New(etcdtest.Client(t), key)
	require.NoError(t, err)
	defer waiter.Close()

	start := time.Now()
	crashing.Close() // no Release, no revoke: the lease runs out
	require.NoError(t, waiter.Wait(ctx))
	assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "released before the lease could expire")
	<-b.Done()
	assert.ErrorIs(t, b.Err(), barrier.ErrLost)
	require.NoError(t, b.Close())
}

func TestBarrierCloseReleases(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "gate"
	b, err := barrier.New(cli, key)
	require.NoError(t, err)
	require.NoError(t, b.Hold(ctx))
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "idempotent")
	assert.ErrorIs(t, b.Err(), barrier.ErrClosed)
	assert.ErrorIs(t, b.Hold(ctx), barrier.ErrClosed)
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	assert.Empty(t, resp.Kvs)
}

// enterAll runs Enter on each barrier concurrently and returns their errors.
func enterAll(ctx context.Context, bs []*barrier.DoubleBarrier) []error {
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() { errs[i] = b.Enter(ctx) })
	}
	wg.Wait()
	return errs
}

func newDoubles(t *testing.T, key string, n, count int, opts ...barrier.Option) []*barrier.DoubleBarrier {
	var bs []*barrier.DoubleBarrier
	for range n {
		b, err := barrier.NewDouble(etcdtest.Client(t), key, count, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		bs = append(bs, b)
	}
	return bs
}

func TestDoubleBarrierEnterWaitsForAll(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "job"
	bs := newDoubles(t, key, 3, 3)

	entered := make(chan error, 2)
	for _, b := range bs[:2] {
		go func() { entered <- b.Enter(ctx) }()
	}
	select {
	case err := <-entered:
		t.Fatalf("entered with 2 of 3: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, bs[2].Enter(ctx))
	require.NoError(t, <-entered)
	require.NoError(t, <-entered)
	assert.ErrorIs(t, bs[0].Enter(ctx), barrier.ErrEntered)

	left := make(chan error, 2)
	for _, b := range bs[:2] {
		go func() { left <- b.Leave(ctx) }()
	}
	select {
	case err := <-left:
		t.Fatalf("left while one was still inside: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, bs[2].Leave(ctx))
	require.NoError(t, <-left)
	require.NoError(t, <-left)
	assert.ErrorIs(t, bs[0].Leave(ctx), barrier.ErrNotEntered)

	// A second round on the same key works the same way.
	for _, err := range enterAll(ctx, bs) {
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(func() { assert.NoError(t, b.Leave(ctx)) })
	}
	wg.Wait()
}

func TestDoubleBarrierCanceledEnterRemovesItsKey(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "job"
	b, err := barrier.NewDouble(cli, key, 2)
	require.NoError(t, err)
	defer b.Close()
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Enter(cctx), context.DeadlineExceeded)
	resp, err := cli.Get(ctx, key+"/waiters/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, resp.Count, "the canceled participant is no longer counted")
}

// An Enter whose registration was applied but not answered (the reply lost, or ctx
// ended while it was in flight) removes its key: the participant must not be counted
// in while it is gone, its lease kept alive by its session.
func TestDoubleBarrierEnterReplyLostRemovesItsKey(t *testing.T) {
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "job"
	cli, faults := etcdtest.FaultClient(t)
	b, err := barrier.NewDouble(cli, key, 2)
	require.NoError(t, err)
	defer b.Close()
	faults.LoseReply(etcdtest.IsPut) // the registration is applied, its reply lost
	require.ErrorIs(t, b.Enter(ctx), etcdtest.ErrInjected)
	require.Positive(t, faults.Hits())
	faults.LoseReply(nil)
	assert.Zero(t, etcdtest.Count(admin, key+"/waiters/"), "the participant whose Enter failed is still counted")
}
