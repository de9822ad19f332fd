package ownership_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// TestMain runs the tests against one in-process etcd and fails the run if any
// goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// A released session is not alive, although its deadline has not passed: an
// acquisition finishing as its owner closes must not report success on a revoked lease.
func TestReleasedSessionNotAlive(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	ses, err := ownership.Grant(ctx, cli, 5*time.Second, nil)
	require.NoError(t, err)
	require.NoError(t, ses.Alive())
	require.NoError(t, ses.Release())
	assert.Error(t, ses.Alive())
	assert.Error(t, ses.WaitAlive(ctx))
}

// A grant whose reply is slow does not cost the session: the first renewal is due an
// interval after the grant was sent, not after its reply arrived (which, later than
// the deadline less the interval, left the lease to lapse before its first renewal).
func TestSlowGrantReplyKeepsSession(t *testing.T) {
	t.Parallel()
	cli, f := etcdtest.FaultClient(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	const ttl = 5 * time.Second
	// Sent at t0, answered at t0+3.2s: known alive until t0+4.17s (the TTL less the
	// margin), a renewal due at once. Due a second after the reply, it came too late.
	f.Delay(etcdtest.IsGrant, 3200*time.Millisecond)
	ses, err := ownership.Grant(ctx, cli, ttl, nil)
	f.Delay(nil, 0)
	require.NoError(t, err)
	defer ses.Release()
	assert.Never(t, func() bool { return ses.Alive() != nil }, 3*time.Second, 50*time.Millisecond,
		"session lost after a slow grant")
}

// Renewals come as late as leaves a third of the TTL before the deadline, so that a
// lease cut off from us lapses at etcd as soon as etcd's own keep-alive would let it;
// sooner when renewals have been slow.
func TestRenewInterval(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, c := range []struct{ ttl, slow, want time.Duration }{
		{time.Second, 0, time.Second / 3},                               // a third
		{2 * time.Second, 10 * ms, time.Second},                         // 667ms left to land, as etcd's keep-alive
		{2 * time.Second, 300 * ms, 2*time.Second - 333333333 - 900*ms}, // 900ms left
		{2 * time.Second, time.Second, 2 * time.Second / 3},             // never sooner than a third
		{3 * time.Second, 0, time.Second},                               // at most a second
		{10 * time.Second, time.Second, time.Second},
	} {
		got := ownership.RenewInterval(c.ttl, c.slow)
		assert.Equal(t, c.want, got, "TTL %v, slow %v", c.ttl, c.slow)
		assert.GreaterOrEqual(t, c.ttl-ownership.Margin(c.ttl)-got, c.ttl/3, "TTL %v: time left to renew", c.ttl)
	}
}

// A lease of ours given up while etcd did not answer is revoked as soon as etcd answers
// again, even after its Holder went on to a new lease: while it lives on at etcd (here
// renewed by another client, as etcd's leader changes extend every lease), its keys
// block everyone queued behind them.
func TestLostLeaseRevokedOnceEtcdAnswers(t *testing.T) {
	t.Parallel()
	cli, f := etcdtest.FaultClient(t)
	other := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	h := ownership.NewHolder(cli, 3*time.Second, nil, nil)
	defer h.Close()
	lost, err := h.Get(ctx)
	require.NoError(t, err)
	id := lost.Lease()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // etcd keeps the lease alive meanwhile
		defer wg.Done()
		for {
			kctx, cancel := context.WithTimeout(ctx, time.Second)
			_, _ = other.KeepAliveOnce(kctx, id)
			cancel()
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	var revokes atomic.Int64
	f.FailStreams(func(method string) bool { return method == "/etcdserverpb.Lease/LeaseKeepAlive" })
	f.Fail(func(_ string, req any) bool {
		_, ok := req.(*pb.LeaseRevokeRequest)
		if ok {
			revokes.Add(1)
		}
		return ok
	})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Error(c, lost.Err(), "the session is lost once renewals stop landing")
	}, 10*time.Second, 20*time.Millisecond)
	cur, err := h.Get(ctx)
	require.NoError(t, err)
	require.NotEqual(t, id, cur.Lease())
	// The Holder has moved on; the lost lease is still being revoked.
	after := revokes.Load()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, revokes.Load(), after+2, "revoke of the lost lease retried after the Holder moved on")
	}, 10*time.Second, 20*time.Millisecond)

	f.Fail(nil)
	f.FailStreams(nil)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := other.TimeToLive(ctx, id)
		if assert.NoError(c, err) {
			assert.Equal(c, int64(-1), r.TTL, "lease revoked")
		}
	}, 10*time.Second, 20*time.Millisecond)
}

// slowFirstStream holds the reply of every other keep-alive stream (the first request of
// each renewal) for a while; the others (the hedges) answer at once.
type slowFirstStream struct {
	grpc.ClientStream
	slow bool
}

func (s *slowFirstStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if s.slow {
		select {
		case <-time.After(2 * time.Second):
		case <-s.Context().Done():
		}
	}
	return err
}

// A renewal is as slow as the time it took to land, from its first request: when the
// hedge answers first, its own round trip says nothing of how long the renewal took,
// and the interval (which leaves three times the slowest renewal to land) would not
// adapt to a server slow to answer.
func TestSlowRenewalMeasuredFromFirstRequest(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(
			func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
				streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				cs, err := streamer(ctx, desc, cc, method, opts...)
				if err != nil || method != "/etcdserverpb.Lease/LeaseKeepAlive" {
					return cs, err
				}
				return &slowFirstStream{ClientStream: cs, slow: n.Add(1)%2 == 1}, nil
			})},
	})
	require.NoError(t, err)
	defer cli.Close()
	ctx := etcdtest.Context(t, 20*time.Second)
	// 5s: renewed every second, 3.17s left to land, hedged after 1.58s, which answers.
	ses, err := ownership.Grant(ctx, cli, 5*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NoError(c, ses.Alive())
		assert.Greater(c, ses.Slow(), time.Second, "renewals took over 1.5s to land")
	}, 10*time.Second, 50*time.Millisecond)
}

// refusals makes etcd's answer to the requests of a refusingClient that match accepts
// err (nil: let them through) and counts those requests.
type refusals struct {
	mu      sync.Mutex
	match   func(req any) bool
	err     error
	tries   int
	silence bool // keep-alive streams fail to open
}

func (r *refusals) refuse(match func(req any) bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.match, r.err, r.tries = match, err, 0
}

func (r *refusals) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries
}

func isDelete(req any) bool { return etcdtest.IsDelete("", req) }

func isRevoke(req any) bool {
	_, ok := req.(*pb.LeaseRevokeRequest)
	return ok
}

// refusingClient returns a client of the shared node whose requests fail as the returned
// refusals say, with the gRPC status etcd answers (rpctypes.ErrGRPC*).
func refusingClient(t *testing.T) (*clientv3.Client, *refusals) {
	r := &refusals{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
				cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				r.mu.Lock()
				hit := r.match != nil && r.match(req)
				if hit {
					r.tries++
				}
				err := r.err
				r.mu.Unlock()
				if hit && err != nil {
					return err
				}
				return invoker(ctx, method, req, reply, cc, opts...)
			}),
			grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
				method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				r.mu.Lock()
				silence := r.silence
				r.mu.Unlock()
				if silence && method == "/etcdserverpb.Lease/LeaseKeepAlive" {
					return nil, rpctypes.ErrGRPCNoLeader
				}
				return streamer(ctx, desc, cc, method, opts...)
			}),
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli, r
}

// putTracked puts a key on the session's lease and tracks it, as Claim.Acquire does.
func putTracked(t *testing.T, ctx context.Context, ses *ownership.Session) string {
	key := etcdtest.Prefix(t) + "k"
	_, err := ses.Client().Put(ctx, key, "", clientv3.WithLease(ses.Lease()))
	require.NoError(t, err)
	ses.Track(key)
	return key
}

// A delete etcd refuses for good (here: the user may no longer write the key) is given
// up, not retried in the background until the session ends — for a long-lived session,
// a goroutine and a stream of requests that never stop. The key is forgotten; the lease
// still takes it at its end.
func TestDropGivesUpRefusedDelete(t *testing.T) {
	t.Parallel()
	cli, r := refusingClient(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	ses, err := ownership.Grant(ctx, cli, 5*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()

	// Refused at once: Drop returns with nothing left to the janitor.
	key := putTracked(t, ctx, ses)
	r.refuse(isDelete, rpctypes.ErrGRPCPermissionDenied)
	ses.Drop(key)
	assert.Equal(t, 1, r.count(), "deletes tried")
	assert.False(t, ses.Sweeping(), "janitor at work on a refused delete")
	assert.False(t, ses.Tracked(key))

	// Refused after a failure that passes: the janitor retries, then gives up.
	key = putTracked(t, ctx, ses)
	r.refuse(isDelete, rpctypes.ErrGRPCNoLeader)
	ses.Drop(key)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, r.count(), 3, "delete retried in the background")
	}, 10*time.Second, 10*time.Millisecond)
	r.refuse(isDelete, rpctypes.ErrGRPCRequestTooLarge)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.False(c, ses.Sweeping(), "janitor still at work")
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, r.count(), "deletes tried once refused")
	assert.False(t, ses.Tracked(key))
	assert.Equal(t, int64(1), etcdtest.Count(cli, key), "key left to the lease")
}

// A delete that failed for a passing reason (no leader) is retried until it lands.
func TestDropRetriesUntilDeleteLands(t *testing.T) {
	t.Parallel()
	cli, r := refusingClient(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	ses, err := ownership.Grant(ctx, cli, 5*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	key := putTracked(t, ctx, ses)
	r.refuse(isDelete, rpctypes.ErrGRPCNoLeader)
	ses.Drop(key)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, r.count(), 3, "delete retried in the background")
	}, 10*time.Second, 10*time.Millisecond)
	r.refuse(nil, nil)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, int64(0), etcdtest.Count(cli, key), "key deleted")
		assert.False(c, ses.Sweeping(), "janitor still at work")
	}, 10*time.Second, 10*time.Millisecond)
}

// A lost lease of ours whose revoke etcd refuses for good (the user may no longer write
// a key on it) is left to expire: the janitor gives up rather than revoke until Release,
// and Retire does not wait for it.
func TestLostLeaseRevokeRefusedGivenUp(t *testing.T) {
	t.Parallel()
	cli, r := refusingClient(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	ses, err := ownership.Grant(ctx, cli, 2*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	r.refuse(isRevoke, rpctypes.ErrGRPCPermissionDenied)
	r.mu.Lock()
	r.silence = true
	r.mu.Unlock()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Error(c, ses.Err(), "the session is lost once renewals stop landing")
	}, 10*time.Second, 20*time.Millisecond)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.False(c, ses.Sweeping(), "janitor still at work")
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, r.count(), "revokes tried")
	ses.Retire(ctx)
	assert.NoError(t, ctx.Err(), "Retire waited for a revoke given up")
}

// After a suspend longer than the time left (the wall clock jumps past the deadline,
// the monotonic one, which stops during a suspend on Linux, does not), the lease may be
// gone at etcd: a check says so at once, and Lost closes with it, not at the next
// renewal.
func TestWallClockPastDeadlineFailsCheck(t *testing.T) {
	t.Parallel()
	ctx := etcdtest.Context(t, 10*time.Second)
	ses, err := ownership.Grant(ctx, etcdtest.Client(t), 5*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	require.NoError(t, ses.Alive())
	ses.SetWallClock(func() time.Time { return time.Now().Add(6 * time.Second) })
	assert.ErrorIs(t, ses.Alive(), ownership.ErrSessionLost)
	select {
	case <-ses.Lost():
	default:
		t.Error("Lost not closed by the check")
	}
}

// Without a check, the tracker notices at its next renewal, which it does not send: a
// late reply would otherwise extend a lease that etcd may have expired.
func TestWallClockPastDeadlineLosesSession(t *testing.T) {
	t.Parallel()
	ctx := etcdtest.Context(t, 10*time.Second)
	ses, err := ownership.Grant(ctx, etcdtest.Client(t), 5*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	ses.SetWallClock(func() time.Time { return time.Now().Add(6 * time.Second) })
	// Renewed every second (RenewInterval).
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.ErrorIs(c, ses.Err(), ownership.ErrSessionLost)
	}, 3*time.Second, 10*time.Millisecond)
}

// A wall clock stepped back never keeps a lease alive longer: the monotonic deadline
// still holds.
func TestWallClockBackKeepsDeadline(t *testing.T) {
	t.Parallel()
	cli, f := etcdtest.FaultClient(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	ses, err := ownership.Grant(ctx, cli, time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	ses.SetWallClock(func() time.Time { return time.Now().Add(-time.Hour) })
	f.FailStreams(func(method string) bool { return method == "/etcdserverpb.Lease/LeaseKeepAlive" })
	// Lost 800ms after the last renewal was sent.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.ErrorIs(c, ses.Alive(), ownership.ErrSessionLost)
	}, 3*time.Second, 10*time.Millisecond)
}

// A client whose context ended counts as closed, and a closed client revokes nothing:
// the session's lease is left to expire, as a process that died would leave it. A revoke
// sent while a client shuts its connections down lands or not by chance, so that closing
// a client left its leases' keys to vanish at once in some runs and after a TTL in others.
func TestReleaseAfterClientContextEndsRevokesNothing(t *testing.T) {
	t.Parallel()
	ctx := etcdtest.Context(t, 20*time.Second)
	clientCtx, cancelClient := context.WithCancel(context.Background())
	defer cancelClient()
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcdtest.Endpoints(), Context: clientCtx, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	ses, err := ownership.Grant(ctx, cli, 10*time.Second, nil)
	require.NoError(t, err)
	cancelClient() // the connection stays open: a revoke would still get through
	select {
	case <-ses.Lost():
	case <-ctx.Done():
		t.Fatal("session not lost after its client's context ended")
	}
	require.NoError(t, ses.ReleaseContext(ctx))
	ttl, err := etcdtest.Client(t).TimeToLive(ctx, ses.Lease())
	require.NoError(t, err)
	assert.Positive(t, ttl.TTL, "lease revoked by a closed client")
}
