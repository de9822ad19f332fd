package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// A Mutex on a shared session (WithSession) closed while etcd does not answer deletes
// must not leave its key on the caller's lease: the delete goes on in the background
// after Close, until it lands or the caller's session ends — else the lock is dead for
// everyone while that session lives.
func TestCloseWithSessionKeyDeletedLater(t *testing.T) {
	t.Parallel()
	cli, faults := etcdtest.FaultClient(t)
	other := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 90*time.Second)
	key := etcdtest.Prefix(t) + "l"

	ses, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	require.NoError(t, err)
	defer ses.Close()

	m, err := lock.New(cli, key, lock.WithSession(ses))
	require.NoError(t, err)
	require.NoError(t, m.Lock(ctx))

	faults.Stall(etcdtest.IsDelete) // etcd does not answer deletes for a while
	_ = m.Close()                   // bounded: returns after the cleanup timeouts
	faults.Stall(nil)               // etcd answers again; the caller's session lives on

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, etcdtest.Count(other, key+"/"),
			"Close left our key on the caller's live lease: nobody can take the lock")
	}, 20*time.Second, 200*time.Millisecond)

	m2, err := lock.New(other, key, lock.WithTTL(5*time.Second))
	require.NoError(t, err)
	defer m2.Close()
	require.NoError(t, m2.TryLock(ctx))
}

// Close is bounded (a third of the TTL, at least 1s, per wait for etcd) even while a
// Lock is granting a lease that etcd does not answer: it must not wait out the grant,
// which may take the whole TTL.
func TestCloseDoesNotWaitForGrant(t *testing.T) {
	t.Parallel()
	cli, faults := etcdtest.FaultClient(t)
	key := etcdtest.Prefix(t) + "l"
	const ttl = 15 * time.Second
	m, err := lock.New(cli, key, lock.WithTTL(ttl))
	require.NoError(t, err)

	faults.Stall(func(method string, _ any) bool { return method == "/etcdserverpb.Lease/LeaseGrant" })
	defer faults.Stall(nil)
	lockErr := make(chan error, 1)
	go func() { lockErr <- m.Lock(etcdtest.Context(t, 60*time.Second)) }()
	require.Eventually(t, func() bool { return faults.Hits() > 0 }, 10*time.Second, 10*time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case <-closed:
	case <-time.After(2 * (ttl/3 + time.Second)):
		t.Fatal("Close blocked behind a lease grant")
	}
	assert.ErrorIs(t, <-lockErr, lock.ErrClosed)
}

// Close ends a Lock (or Acquire) waiting on the same value, which returns ErrClosed and
// leaves no key behind, also when the lease is shared and lives on: a Manager's Mutex,
// or WithSession with another user of the session. A wait that went on after Close
// would take the lock for a value nobody can unlock any more.
func TestCloseEndsWaitingLock(t *testing.T) {
	t.Parallel()
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 60*time.Second)
	for _, kind := range []string{"manager", "session", "semaphore"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			pfx := etcdtest.Prefix(t) + "m"
			key := pfx + "/l"
			holder := newMutex(t, admin, key)
			require.NoError(t, holder.Lock(ctx))

			s, err := concurrency.NewSession(admin, concurrency.WithTTL(5))
			require.NoError(t, err)
			defer s.Close()
			// Another user of the session keeps it (and its lease) alive.
			_ = newMutex(t, admin, pfx+"/other", lock.WithSession(s))
			var wait func() error
			var closeWaiter func() error
			switch kind {
			case "manager":
				mgr, err := lock.NewManager(admin, pfx)
				require.NoError(t, err)
				defer mgr.Close()
				m, err := mgr.Mutex("l")
				require.NoError(t, err)
				wait, closeWaiter = func() error { return m.Lock(ctx) }, m.Close
			case "session":
				m := newMutex(t, admin, key, lock.WithSession(s))
				wait, closeWaiter = func() error { return m.Lock(ctx) }, m.Close
			case "semaphore":
				sem, err := lock.NewSemaphore(admin, key, 1, lock.WithSession(s))
				require.NoError(t, err)
				wait = func() error {
					_, err := sem.Acquire(ctx)
					return err
				}
				closeWaiter = sem.Close
			}
			got := make(chan error, 1)
			go func() { got <- wait() }()
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.EqualValues(c, 2, etcdtest.Count(admin, key+"/"), "waiting behind the holder")
			}, 10*time.Second, 20*time.Millisecond)

			require.NoError(t, closeWaiter())
			assert.ErrorIs(t, waitErr(t, got, 10*time.Second, "wait after Close"), lock.ErrClosed)
			assert.EqualValues(t, 1, etcdtest.Count(admin, key+"/"), "the waiting key is deleted")
			require.NoError(t, holder.Unlock(ctx))
			assert.Zero(t, etcdtest.Count(admin, key+"/"), "the lock is free")
		})
	}
}

// Close of a Manager or Semaphore holding many locks while etcd does not answer waits a
// third of the TTL for the deletes of all of them together, not one after another (10
// locks on a 3s lease kept Close 11s), then for the revoke; the lease expires within its
// TTL, and the locks with it. So does UnlockAll, after its context ends.
func TestManagerCloseBoundedWithManyLocks(t *testing.T) {
	t.Parallel()
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t) + "m"
	cli, faults := etcdtest.FaultClient(t)
	mgr, err := lock.NewManager(cli, pfx, lock.WithTTL(3*time.Second))
	require.NoError(t, err)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	_, err = mgr.LockAll(ctx, names...)
	require.NoError(t, err)
	other, err := lock.NewManager(cli, pfx+"-other", lock.WithTTL(3*time.Second))
	require.NoError(t, err)
	defer other.Close()
	mus, err := other.LockAll(ctx, names...)
	require.NoError(t, err)
	unlockAll := func() error {
		uctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return other.UnlockAll(uctx, mus)
	}
	sem, err := lock.NewSemaphore(cli, pfx+"-sem", len(names), lock.WithTTL(3*time.Second))
	require.NoError(t, err)
	for range names {
		_, err := sem.Acquire(ctx)
		require.NoError(t, err)
	}

	faults.Stall(func(string, any) bool { return true }) // etcd answers no request
	defer faults.Stall(nil)
	// A third of the TTL (1s) for the deletes, one for the revoke; checked with a
	// deadline three times that.
	for _, c := range []struct {
		what  string
		close func() error
	}{{"Manager", mgr.Close}, {"Semaphore", sem.Close}, {"UnlockAll (1s context)", unlockAll}} {
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_ = c.close()
		}()
		select {
		case <-closed:
		case <-time.After(3 * 2 * time.Second):
			t.Errorf("%s waited for etcd once per lock", c.what)
			<-closed
		}
	}
	faults.Stall(nil)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, etcdtest.Count(admin, pfx+"/"), "locks left behind")
		assert.Zero(c, etcdtest.Count(admin, pfx+"-sem/"), "permits left behind")
		assert.Zero(c, etcdtest.Count(admin, pfx+"-other/"), "unlocked locks left behind")
	}, 15*time.Second, 100*time.Millisecond)
}
