package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func newMutex(t *testing.T, cli *clientv3.Client, key string, opts ...lock.Option) *lock.Mutex {
	t.Helper()
	m, err := lock.New(cli, key, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "l"

	_, err := lock.New(nil, key)
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, err = lock.New(cli, "")
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, err = lock.New(cli, "///")
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, err = lock.New(cli, key, lock.WithTTL(500*time.Millisecond))
	assert.ErrorContains(t, err, "TTL")
	_, err = lock.New(cli, key, nil)
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	require.NoError(t, err)
	defer s.Close()
	_, err = lock.New(cli, key, lock.WithSession(s), lock.WithTTL(time.Second))
	assert.ErrorIs(t, err, lock.ErrInvalidArgument, "WithTTL would be ignored")
	_, err = lock.New(cli, key, lock.WithLogger(nil))
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, err = lock.NewSemaphore(cli, key, 0)
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, err = lock.NewRWMutex(nil, key)
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, err = lock.NewManager(cli, "")
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)

	m := newMutex(t, cli, key)
	assert.ErrorIs(t, m.Unlock(ctx), lock.ErrNotHeld, "Unlock without Lock")
	_, err = m.Do(ctx, clientv3.OpPut(key+"x", "v"))
	assert.ErrorIs(t, err, lock.ErrNotHeld, "Do without Lock")
	assert.Zero(t, m.Token())
	assert.NoError(t, m.Err())
	select {
	case <-m.Done():
	default:
		t.Fatal("Done must be closed when nothing is held")
	}
	//nolint:staticcheck // a nil context is the bad input under test
	assert.ErrorIs(t, m.Lock(nil), lock.ErrInvalidArgument)

	// OwnerCmp of a Mutex that does not hold never succeeds.
	resp, err := cli.Txn(ctx).If(m.OwnerCmp()).Commit()
	require.NoError(t, err)
	assert.False(t, resp.Succeeded)

	require.NoError(t, m.Lock(ctx))
	assert.ErrorIs(t, m.Lock(ctx), lock.ErrBusy, "a Mutex is not re-entrant")
	require.NoError(t, m.Unlock(ctx))
	assert.ErrorIs(t, m.Unlock(ctx), lock.ErrNotHeld, "second Unlock")
	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "Close is idempotent")
	assert.ErrorIs(t, m.Lock(ctx), lock.ErrClosed)

	mgr, err := lock.NewManager(cli, key+"-mgr")
	require.NoError(t, err)
	defer mgr.Close()
	_, err = mgr.LockAll(ctx)
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	//nolint:staticcheck // a nil context is the bad input under test
	_, err = mgr.LockAll(nil, "a", "b")
	assert.ErrorIs(t, err, lock.ErrInvalidArgument, "LockAll with a nil context")
	assert.Zero(t, etcdtest.Count(cli, key+"-mgr/"))
	_, err = mgr.Lock(ctx, "")
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
}

func TestLockUnlock(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "l"
	a := newMutex(t, cli, key)
	b := newMutex(t, cli, key)

	require.NoError(t, a.Lock(ctx))
	done := a.Done()
	tokA := a.Token()
	assert.Positive(t, tokA)

	err := b.TryLock(ctx)
	require.ErrorIs(t, err, lock.ErrLocked)
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, key, held.Key)
	assert.Equal(t, a.Key(), held.Holder)
	assert.Equal(t, tokA, held.Rev)
	resp, err := cli.Get(ctx, key+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.EqualValues(t, 1, resp.Count, "TryLock leaves no key behind")

	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx) }()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := cli.Get(ctx, key+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if assert.NoError(c, err) {
			assert.EqualValues(c, 2, r.Count)
		}
	}, 5*time.Second, 10*time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("b acquired while a holds: %v", err)
	default:
	}
	txn, err := cli.Txn(ctx).If(a.OwnerCmp()).Commit()
	require.NoError(t, err)
	assert.True(t, txn.Succeeded)

	require.NoError(t, a.Unlock(ctx))
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Done not closed by Unlock")
	}
	assert.NoError(t, a.Err(), "Unlock is not a loss")
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("b did not acquire after a's Unlock")
	}
	assert.Greater(t, b.Token(), tokA)
	txn, err = cli.Txn(ctx).If(a.OwnerCmp()).Commit()
	require.NoError(t, err)
	assert.False(t, txn.Succeeded)
	require.NoError(t, b.Unlock(ctx))
}

func TestOwnLeaseReplacedAfterLoss(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "l"
	m := newMutex(t, cli, key, lock.WithTTL(2*time.Second))
	require.NoError(t, m.Lock(ctx))
	done := m.Done()
	r, err := cli.Get(ctx, m.Key())
	require.NoError(t, err)
	_, err = cli.Revoke(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
	require.NoError(t, err)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed after the lease was revoked")
	}
	assert.ErrorIs(t, m.Err(), lock.ErrLost)
	// The next Lock grants a new lease.
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.NoError(c, m.Lock(ctx)) }, 5*time.Second, 50*time.Millisecond)
	r2, err := cli.Get(ctx, m.Key())
	require.NoError(t, err)
	require.Len(t, r2.Kvs, 1)
	assert.NotEqual(t, r.Kvs[0].Lease, r2.Kvs[0].Lease)
	require.NoError(t, m.Unlock(ctx))
}

func TestSharedSessionLost(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "l"
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	require.NoError(t, err)
	defer s.Close()
	m := newMutex(t, cli, key, lock.WithSession(s))
	require.NoError(t, m.Lock(ctx))
	_, err = cli.Revoke(ctx, s.Lease())
	require.NoError(t, err)
	select {
	case <-m.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed after the shared session's lease was revoked")
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.ErrorIs(c, m.Lock(ctx), lock.ErrSessionLost)
	}, 5*time.Second, 50*time.Millisecond)
}

func TestRWMutex(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "rw"
	mk := func() *lock.RWMutex {
		rw, err := lock.NewRWMutex(cli, key)
		require.NoError(t, err)
		t.Cleanup(func() { _ = rw.Close() })
		return rw
	}
	r1, r2, w, r3 := mk(), mk(), mk(), mk()
	require.NoError(t, r1.RLock(ctx))
	require.NoError(t, r2.TryRLock(ctx), "readers share")
	assert.ErrorIs(t, w.TryLock(ctx), lock.ErrLocked)

	wgot := make(chan error, 1)
	go func() { wgot <- w.Lock(ctx) }()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := cli.Get(ctx, key+"/w/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if assert.NoError(c, err) {
			assert.EqualValues(c, 1, r.Count)
		}
	}, 5*time.Second, 10*time.Millisecond)
	// Writer preference: a reader arriving after the waiting writer must wait.
	assert.ErrorIs(t, r3.TryRLock(ctx), lock.ErrLocked)
	rgot := make(chan error, 1)
	go func() { rgot <- r3.RLock(ctx) }()

	require.NoError(t, r1.RUnlock(ctx))
	select {
	case err := <-wgot:
		t.Fatalf("writer acquired while a reader holds: %v", err)
	default:
	}
	require.NoError(t, r2.RUnlock(ctx))
	select {
	case err := <-wgot:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("writer did not acquire")
	}
	select {
	case err := <-rgot:
		t.Fatalf("reader acquired while the writer holds: %v", err)
	default:
	}
	require.NoError(t, w.Unlock(ctx))
	select {
	case err := <-rgot:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("reader did not acquire after the writer")
	}
	assert.Positive(t, r3.Token())
	require.NoError(t, r3.RUnlock(ctx))
}

func TestManagerLockAll(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	pfx := etcdtest.Prefix(t) + "m"
	m1, err := lock.NewManager(cli, pfx)
	require.NoError(t, err)
	defer m1.Close()
	m2, err := lock.NewManager(cli, pfx)
	require.NoError(t, err)
	defer m2.Close()

	held, err := m1.LockAll(ctx, "c", "a", "b", "a")
	require.NoError(t, err)
	require.Len(t, held, 3)
	assert.Less(t, held[0].Key(), held[1].Key())
	assert.Less(t, held[1].Key(), held[2].Key())
	// All on one lease.
	var lease int64
	for _, mu := range held {
		r, err := cli.Get(ctx, mu.Key())
		require.NoError(t, err)
		if lease == 0 {
			lease = r.Kvs[0].Lease
		}
		assert.Equal(t, lease, r.Kvs[0].Lease)
	}

	// A LockAll that cannot finish releases what it got.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = m2.LockAll(short, "z", "b")
	cancel()
	require.Error(t, err)
	r, err := cli.Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.EqualValues(t, 3, r.Count, "m2 left nothing behind")

	require.NoError(t, m1.UnlockAll(ctx, held))
	held2, err := m2.LockAll(ctx, "b", "z")
	require.NoError(t, err)
	require.NoError(t, m2.UnlockAll(ctx, held2))
}

func TestInteropWithConcurrencyMutex(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "l"
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	require.NoError(t, err)
	defer s.Close()
	theirs := concurrency.NewMutex(s, key)
	ours := newMutex(t, cli, key)

	require.NoError(t, theirs.Lock(ctx))
	assert.ErrorIs(t, ours.TryLock(ctx), lock.ErrLocked)
	require.NoError(t, theirs.Unlock(ctx))
	require.NoError(t, ours.Lock(ctx))
	assert.ErrorIs(t, theirs.TryLock(ctx), concurrency.ErrLocked)
	require.NoError(t, ours.Unlock(ctx))
}

// A Lock on a Manager whose lease is being granted for another Lock (etcd not
// answering) returns when its own context ends, not when that grant gives up (up to a
// TTL later): Locks wait for one grant at a time, each only as long as its context lets
// it.
func TestManagerLockHonoursContextBehindGrant(t *testing.T) {
	t.Parallel()
	cli, faults := etcdtest.FaultClient(t)
	ctx := etcdtest.Context(t, 60*time.Second)
	mgr, err := lock.NewManager(cli, etcdtest.Prefix(t)+"m", lock.WithTTL(30*time.Second))
	require.NoError(t, err)
	defer mgr.Close()
	faults.Stall(etcdtest.IsGrant) // the grant hangs until its context ends (the TTL)
	defer faults.Stall(nil)
	first := make(chan error, 1)
	go func() {
		_, err := mgr.Lock(ctx, "a")
		first <- err
	}()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Positive(c, faults.Hits(), "the first Lock is granting")
	}, 10*time.Second, 10*time.Millisecond)

	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := mgr.Lock(short, "b")
		second <- err
	}()
	// Its context ends after 500ms; checked with a deadline ten times that.
	assert.ErrorIs(t, waitErr(t, second, 5*time.Second, "Lock behind another's grant"), context.DeadlineExceeded)
	require.NoError(t, mgr.Close())
	assert.ErrorIs(t, waitErr(t, first, 10*time.Second, "Lock granting at Close"), lock.ErrClosed)
}
