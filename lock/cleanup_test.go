package lock_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// keysUnder lists the keys under pfx.
func keysUnder(t *testing.T, cli *clientv3.Client, pfx string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	var out []string
	for _, kv := range r.Kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

// waitPastDeadline runs try with a context whose deadline passes once n keys are under
// pfx (the holder's and the waiting one), and returns try's error.
func waitPastDeadline(t *testing.T, admin *clientv3.Client, pfx string, n int64, try func(context.Context) error) error {
	t.Helper()
	ctx := etcdtest.NewExpiringContext()
	defer ctx.Expire()
	got := make(chan error, 1)
	go func() { got <- try(ctx) }()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.EqualValues(c, n, etcdtest.Count(admin, pfx), "waiting behind the holder")
	}, 10*time.Second, 10*time.Millisecond)
	ctx.Expire()
	return waitErr(t, got, 10*time.Second, "wait past its deadline")
}

// A Semaphore closed while acquisitions are in flight neither panics nor leaves a
// permit behind.
func TestSemaphoreCloseDuringAcquire(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 60*time.Second)
	key := etcdtest.Prefix(t) + "s"
	for i := 0; i < 30; i++ {
		sem, err := lock.NewSemaphore(cli, key, 3)
		require.NoError(t, err)
		// Warm up, so that acquisitions below need one round trip and race Close.
		p, err := sem.Acquire(ctx)
		require.NoError(t, err)
		require.NoError(t, p.Release(ctx))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j := 0; j < 3; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				p, err := sem.TryAcquire(ctx)
				if err == nil {
					_ = p.Release(ctx)
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(i%5) * time.Millisecond) // vary where Close lands
		require.NoError(t, sem.Close())
		wg.Wait()
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, etcdtest.Count(cli, key+"/"))
	}, 10*time.Second, 50*time.Millisecond, "permits left behind")
}

// A wait that ends (deadline) while etcd refuses our deletes leaves no key behind once
// etcd accepts them again: the cleanup is retried, so the name does not stay blocked for
// everyone — with a lease of our own, with a shared session, and for a Semaphore.
func TestCanceledWaitCleanupRetried(t *testing.T) {
	t.Parallel()
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 60*time.Second)
	for _, kind := range []string{"own", "session", "semaphore", "manager"} {
		t.Run(kind, func(t *testing.T) {
			key := etcdtest.Prefix(t) + "l"
			cli, faults := etcdtest.FaultClient(t)
			holder := newMutex(t, admin, key)
			var try func(context.Context) error
			switch kind {
			case "own":
				try = newMutex(t, cli, key).Lock
			case "session":
				s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
				require.NoError(t, err)
				defer s.Close()
				try = newMutex(t, cli, key, lock.WithSession(s)).Lock
			case "semaphore":
				// One permit: the holder's Mutex key counts as a permit under key/.
				sem, err := lock.NewSemaphore(cli, key, 1)
				require.NoError(t, err)
				defer sem.Close()
				try = func(ctx context.Context) error { _, err := sem.Acquire(ctx); return err }
			case "manager":
				mgr, err := lock.NewManager(cli, key[:strings.LastIndex(key, "/")])
				require.NoError(t, err)
				defer mgr.Close()
				name := key[strings.LastIndex(key, "/")+1:]
				try = func(ctx context.Context) error { _, err := mgr.Lock(ctx, name); return err }
			}
			require.NoError(t, holder.Lock(ctx))
			faults.Fail(etcdtest.IsDelete)
			err := waitPastDeadline(t, admin, key+"/", 2, try)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Positive(t, faults.Hits(), "the cleanup was attempted and failed")
			faults.Fail(nil)
			assert.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.EqualValues(c, 1, etcdtest.Count(admin, key+"/"), "the waiting key is deleted in the end")
			}, 10*time.Second, 50*time.Millisecond)
			// The name is not blocked: another participant gets the lock after the holder.
			require.NoError(t, holder.Unlock(ctx))
			next := newMutex(t, admin, key)
			require.NoError(t, next.Lock(ctx))
			require.NoError(t, next.Unlock(ctx))
		})
	}
}

// The key name of a failed attempt is never used again, even when the failure is
// reported as the caller's deadline: a delete of it may still be on its way.
func TestFailedAttemptNameNotReused(t *testing.T) {
	t.Parallel()
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	key := etcdtest.Prefix(t) + "l"
	cli, faults := etcdtest.FaultClient(t)
	holder := newMutex(t, admin, key)
	m := newMutex(t, cli, key)
	require.NoError(t, holder.Lock(ctx))
	faults.Fail(etcdtest.IsDelete)
	require.ErrorIs(t, waitPastDeadline(t, admin, key+"/", 2, m.Lock), context.DeadlineExceeded)
	var failed string
	for _, k := range keysUnder(t, admin, key+"/") {
		if k != holder.Key() {
			failed = k
		}
	}
	require.NotEmpty(t, failed, "the failed attempt's key is still there")
	faults.Fail(nil)
	require.NoError(t, holder.Unlock(ctx))
	require.NoError(t, m.Lock(ctx))
	assert.NotEqual(t, failed, m.Key(), "a failed attempt's name was used again")
	require.NoError(t, m.Unlock(ctx))
}

// Err reports the loss of a write lock (it used to fall back to the reader's nil).
func TestRWMutexErrAfterWriteLost(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "rw"
	rw, err := lock.NewRWMutex(cli, key)
	require.NoError(t, err)
	defer rw.Close()
	require.NoError(t, rw.Lock(ctx))
	done := rw.Done()
	keys := keysUnder(t, cli, key+"/")
	require.Len(t, keys, 1)
	_, err = cli.Delete(ctx, keys[0])
	require.NoError(t, err)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the write key was deleted")
	}
	assert.ErrorIs(t, rw.Err(), lock.ErrLost)
	assert.Zero(t, rw.Token())
}

// LockAll's cleanup after a failure is bounded even when etcd never answers it.
func TestLockAllCleanupBounded(t *testing.T) {
	t.Parallel()
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t) + "m"
	cli, faults := etcdtest.FaultClient(t)
	other, err := lock.NewManager(admin, pfx)
	require.NoError(t, err)
	defer other.Close()
	b, err := other.Lock(ctx, "b")
	require.NoError(t, err)
	mgr, err := lock.NewManager(cli, pfx, lock.WithTTL(3*time.Second))
	require.NoError(t, err)
	defer mgr.Close()

	got := make(chan error, 1)
	short, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, err := mgr.LockAll(short, "a", "b")
		got <- err
	}()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.EqualValues(c, 2, etcdtest.Count(admin, pfx+"/b/"), "waiting for b")
		assert.EqualValues(c, 1, etcdtest.Count(admin, pfx+"/a/"), "holding a")
	}, 10*time.Second, 20*time.Millisecond)
	faults.Stall(etcdtest.IsDelete) // etcd never answers a delete from now on
	cancel()
	// Bound: a third of the TTL per wait for etcd (1s here) for the release of a, one
	// for the waiting key of b; checked with room to spare.
	select {
	case err := <-got:
		require.Error(t, err)
	case <-time.After(3 * 2 * time.Second):
		faults.Stall(nil)
		t.Fatal("LockAll's cleanup is not bounded")
	}
	faults.Stall(nil)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, etcdtest.Count(admin, pfx+"/a/"), "a released in the end")
		assert.EqualValues(c, 1, etcdtest.Count(admin, pfx+"/b/"))
	}, 15*time.Second, 50*time.Millisecond)
	require.NoError(t, b.Unlock(ctx))
}

// keepCallersLease renews lease through cli until the test ends: the caller's lease
// lives on while renewals through the caller's client fail.
func keepCallersLease(t *testing.T, cli *clientv3.Client, lease clientv3.LeaseID) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := cli.KeepAlive(ctx, lease)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// When we declare a shared session lost while the caller's lease lives on (our
// renewals fail, the caller's keep-alive stream does not), our keys on it are deleted:
// they are ours to clean up, not the caller's.
func TestSharedSessionLostKeysDeleted(t *testing.T) {
	t.Parallel()
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	key := etcdtest.Prefix(t) + "l"
	cli, faults := etcdtest.FaultClient(t)
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(3))
	require.NoError(t, err)
	defer s.Close()
	holder := newMutex(t, admin, key)
	require.NoError(t, holder.Lock(ctx))
	held := newMutex(t, cli, key+"-other", lock.WithSession(s))
	require.NoError(t, held.Lock(ctx))
	waiter := newMutex(t, cli, key, lock.WithSession(s))
	got := make(chan error, 1)
	go func() { got <- waiter.Lock(ctx) }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.EqualValues(ct, 2, etcdtest.Count(admin, key+"/"))
	}, 10*time.Second, 20*time.Millisecond)

	// Renewals through cli fail from now on, ours and the session's own; the caller's
	// lease lives on, renewed through another client.
	keepCallersLease(t, admin, s.Lease())
	faults.FailStreams(func(m string) bool { return strings.HasSuffix(m, "/LeaseKeepAlive") })
	select {
	case <-held.Done():
	case <-time.After(3 * 3 * time.Second):
		t.Fatal("the holding on the shared session did not end")
	}
	assert.ErrorIs(t, held.Err(), lock.ErrSessionLost)
	assert.ErrorIs(t, waitErr(t, got, 10*time.Second, "waiter on the lost session"), lock.ErrSessionLost)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, etcdtest.Count(admin, key+"-other/"), "the held key is deleted")
		assert.EqualValues(ct, 1, etcdtest.Count(admin, key+"/"), "the waiting key is deleted")
	}, 10*time.Second, 50*time.Millisecond)
	ttl, err := admin.TimeToLive(ctx, s.Lease())
	require.NoError(t, err)
	assert.Positive(t, ttl.TTL, "the caller's lease lives on")
	faults.FailStreams(nil)
	require.NoError(t, holder.Unlock(ctx))
}

// Once the client is closed, the keys of a lost shared session are no longer retried:
// no delete can go through a closed client (and the caller's lease, no longer kept
// alive, takes them with it), so the retries would only spin until Close.
func TestSharedSessionCleanupStopsWithClient(t *testing.T) {
	t.Parallel()
	ctx := etcdtest.Context(t, 30*time.Second)
	key := etcdtest.Prefix(t) + "l"
	cli, faults := etcdtest.FaultClient(t)
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(3))
	require.NoError(t, err)
	defer s.Close()
	m := newMutex(t, cli, key, lock.WithSession(s))
	require.NoError(t, m.Lock(ctx))

	// Our renewals fail (the caller's lease lives on, renewed through another client),
	// and so do deletes: the key stays owed a delete once the session is declared lost.
	keepCallersLease(t, etcdtest.Client(t), s.Lease())
	faults.FailStreams(func(m string) bool { return strings.HasSuffix(m, "/LeaseKeepAlive") })
	faults.Fail(etcdtest.IsDelete)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		select {
		case <-m.Done():
		default:
			c.Errorf("the holding on the shared session has not ended")
		}
	}, 10*time.Second, 20*time.Millisecond)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Positive(c, faults.Hits(), "the delete is retried while the client is open")
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, cli.Close())
	// At most the retry in flight as the client closed; none after it.
	after := faults.Hits()
	assert.Never(t, func() bool { return faults.Hits() > after+1 }, 2*time.Second, 50*time.Millisecond,
		"deletes retried through a closed client")
}
