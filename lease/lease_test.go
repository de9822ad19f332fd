package lease_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lease"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)

	_, err := lease.New(ctx, nil, 5*time.Second)
	require.ErrorIs(t, err, lease.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "nil client")

	for _, ttl := range []time.Duration{0, -time.Second, 999 * time.Millisecond} {
		_, err = lease.New(ctx, cli, ttl)
		require.ErrorIs(t, err, lease.ErrInvalidArgument, "ttl %v", ttl)
		assert.Contains(t, err.Error(), "ttl")
	}

	_, err = lease.New(ctx, cli, 5*time.Second, lease.WithLogger(nil))
	require.ErrorIs(t, err, lease.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "logger")

	_, err = lease.New(ctx, cli, 5*time.Second, nil)
	require.ErrorIs(t, err, lease.ErrInvalidArgument, "a nil option is an error")
	assert.Contains(t, err.Error(), "nil option")
}

func TestNewHonoursCancelledContext(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := lease.New(ctx, cli, 5*time.Second)
	require.ErrorIs(t, err, context.Canceled)
}

func TestKeepsLeaseAlivePastTTL(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	k, err := lease.New(ctx, cli, time.Second)
	require.NoError(t, err)
	defer k.Close()
	key := etcdtest.Prefix(t) + "k"
	_, err = cli.Put(ctx, key, "v", clientv3.WithLease(k.ID()))
	require.NoError(t, err)

	granted, err := k.TTL(ctx)
	require.NoError(t, err)
	// Outlive the granted TTL three times over: only renewals keep the key.
	select {
	case <-k.Lost():
		t.Fatalf("lease lost: %v", k.Err())
	case <-time.After(3 * granted):
	}
	_, err = k.TTL(ctx) // etcd still knows the lease (0 is its last second)
	require.NoError(t, err)
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	assert.Len(t, resp.Kvs, 1)
	assert.NoError(t, k.Err())
}

func TestRevokedElsewhereIsLost(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	other := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	k, err := lease.New(ctx, cli, 10*time.Second)
	require.NoError(t, err)
	defer k.Close()

	_, err = other.Revoke(ctx, k.ID())
	require.NoError(t, err)
	// The next renewal, at most a second after the last one, finds the lease gone:
	// checked with a deadline of three renewals, well before the lease's deadline.
	select {
	case <-k.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("Done not closed within 3s of the revoke")
	}
	require.ErrorIs(t, k.Err(), lease.ErrLost)
	assertClosed(t, k.Lost())
	_, err = k.TTL(ctx)
	assert.ErrorIs(t, err, lease.ErrLost)
	assert.NoError(t, k.Close())
	assert.ErrorIs(t, k.Err(), lease.ErrLost, "the first reason stays")
}

func TestRegrantCallsHookWithNewLease(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	other := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "k"
	ids := make(chan clientv3.LeaseID, 4)
	var failures atomic.Int32
	k, err := lease.New(ctx, cli, 5*time.Second, lease.WithRegrant(func(ctx context.Context, id clientv3.LeaseID) error {
		// Fail twice: the hook must be retried on the same new lease.
		if failures.Add(1) <= 2 {
			return errors.New("not yet")
		}
		if _, err := cli.Put(ctx, key, "again", clientv3.WithLease(id)); err != nil {
			return err
		}
		ids <- id
		return nil
	}))
	require.NoError(t, err)
	defer k.Close()
	first, lost := k.ID(), k.Lost()

	_, err = other.Revoke(ctx, first)
	require.NoError(t, err)
	// Found by the next renewal (at most a second away); 3s is before the 5s lease's
	// deadline could close Lost.
	select {
	case <-lost:
	case <-time.After(3 * time.Second):
		t.Fatal("Lost not closed within 3s of the revoke")
	}
	var second clientv3.LeaseID
	select {
	case second = <-ids:
	case <-time.After(5 * time.Second):
		t.Fatal("hook not called with a new lease")
	}
	assert.NotEqual(t, first, second)
	assert.Equal(t, second, k.ID())
	assert.EqualValues(t, 3, failures.Load())
	assertOpen(t, k.Done())
	assertOpen(t, k.Lost())
	assert.NoError(t, k.Err())
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, int64(second), resp.Kvs[0].Lease)
}

func TestCloseRevokesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	k, err := lease.New(ctx, cli, 30*time.Second, lease.WithLogger(zap.NewNop()))
	require.NoError(t, err)
	key := etcdtest.Prefix(t) + "k"
	_, err = cli.Put(ctx, key, "v", clientv3.WithLease(k.ID()))
	require.NoError(t, err)

	require.NoError(t, k.Close())
	require.NoError(t, k.Close())
	assertClosed(t, k.Done())
	assertClosed(t, k.Lost())
	assert.ErrorIs(t, k.Err(), lease.ErrClosed)
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	assert.Empty(t, resp.Kvs, "Close must revoke the lease and so delete its keys")
}

// Close and CloseContext are bounded even when etcd is unreachable (checked on one
// single-member cluster whose client is blackholed).
func TestCloseBoundedWhileUnreachable(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(0)
	ctx := etcdtest.Context(t, 30*time.Second)

	t.Run("CloseDuringRegrant", func(t *testing.T) {
		k, err := lease.New(ctx, cli, 2*time.Second, lease.WithRegrant(nil))
		require.NoError(t, err)
		lost := k.Lost()
		c.Blackhole(0) // renewals go unanswered: lost by deadline, re-grants hang
		defer c.Unblackhole(0)
		select {
		case <-lost:
		case <-time.After(6 * time.Second):
			t.Fatal("lease not lost after its TTL of silence")
		}
		// A third of the TTL, at least 1s, in all; checked with a deadline of three times that.
		closed := make(chan error, 1)
		go func() { closed <- k.Close() }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(3 * time.Second):
			t.Fatal("Close not bounded while etcd is unreachable")
		}
	})

	t.Run("CloseContextGivesUpTheRevoke", func(t *testing.T) {
		// Close alone would wait a third of this TTL (10s) for the revoke.
		k, err := lease.New(ctx, cli, 30*time.Second)
		require.NoError(t, err)
		c.Blackhole(0)
		defer c.Unblackhole(0)
		etcdtest.WaitSwallowed(t, cli)
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		closed := make(chan error, 1)
		go func() { closed <- k.CloseContext(cctx) }()
		select {
		case err := <-closed:
			assert.ErrorIs(t, err, context.DeadlineExceeded, "the revoke was given up")
		case <-time.After(3 * time.Second):
			t.Fatal("CloseContext waited past its context for a revoke etcd does not answer")
		}
		assertClosed(t, k.Done())
		assert.ErrorIs(t, k.Err(), lease.ErrClosed)
		require.NoError(t, k.Close(), "later calls return nil")
	})
}

func assertClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Error("channel not closed")
	}
}

func assertOpen(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
		t.Error("channel closed")
	default:
	}
}

func TestClientClosedEndsTheKeeper(t *testing.T) {
	t.Parallel()
	cli, err := etcdtest.NewClient()
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 20*time.Second)
	k, err := lease.New(ctx, cli, 5*time.Second, lease.WithRegrant(nil))
	require.NoError(t, err)
	defer k.Close()
	require.NoError(t, cli.Close())
	select {
	case <-k.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("Done not closed after the client closed")
	}
	assert.ErrorIs(t, k.Err(), lease.ErrLost)
	assert.ErrorIs(t, k.Err(), lease.ErrClientClosed)
}

// A client closed while a lost lease is being re-granted ends the Keeper (Done, with
// ErrClientClosed), as it does when the client closes while the lease lives: re-grants
// on a closed client can never succeed.
func TestClientClosedDuringRegrantEndsTheKeeper(t *testing.T) {
	t.Parallel()
	cli, faults := etcdtest.FaultClient(t)
	other := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	k, err := lease.New(ctx, cli, 5*time.Second, lease.WithRegrant(nil))
	require.NoError(t, err)
	defer k.Close()
	lost := k.Lost()
	faults.Fail(etcdtest.IsGrant) // re-grants fail until the client closes
	_, err = other.Revoke(ctx, k.ID())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		select {
		case <-lost:
			return faults.Hits() > 0
		default:
			return false
		}
	}, 10*time.Second, 10*time.Millisecond, "lease lost and a re-grant tried")

	require.NoError(t, cli.Close())
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.ErrorIs(c, k.Err(), lease.ErrClientClosed)
	}, 10*time.Second, 20*time.Millisecond, "Keeper still re-granting on a closed client")
	assertClosed(t, k.Done())
	assert.ErrorIs(t, k.Err(), lease.ErrLost)
}

// TTL with a nil context is refused, as New and CloseContext refuse one.
func TestTTLRejectsNilContext(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	k, err := lease.New(ctx, cli, 5*time.Second)
	require.NoError(t, err)
	defer k.Close()
	//nolint:staticcheck // a nil context is the bad input under test
	_, err = k.TTL(nil)
	assert.ErrorIs(t, err, lease.ErrInvalidArgument)
}

// etcd counts a lease's time to live in whole seconds, rounded down: a live lease with
// under a second left reads 0, which is not lost (etcd says -1 for a lease it does not
// know). TTL must not report ErrLost then: a 2s lease renewed every second reads 0 just
// before each renewal.
func TestTTLUnderASecondIsNotLost(t *testing.T) {
	t.Parallel()
	cli, faults := etcdtest.FaultClient(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	k, err := lease.New(ctx, cli, 2*time.Second)
	require.NoError(t, err)
	defer k.Close()
	// No renewal lands from now on: the lease runs down to its last second while Lost
	// is still open (it closes a margin before etcd could expire the lease).
	faults.FailStreams(func(m string) bool { return m == "/etcdserverpb.Lease/LeaseKeepAlive" })
	var wrong error
	sawZero := false
	assert.Eventually(t, func() bool {
		left, err := k.TTL(ctx)
		if err == nil && left == 0 {
			sawZero = true // read as alive with under a second left, even if Lost closed since
			return true
		}
		select {
		case <-k.Lost():
			return true // ran out: the lease may be gone
		default: // alive when etcd answered
		}
		if err != nil {
			wrong = err
			return true
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, wrong, "TTL said lost while the lease was alive")
	assert.True(t, sawZero, "the lease ran out before it read under a second left")
}
