package election_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/election"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// When Run's resign fails after fn returned, the candidate does not stay leader with
// nothing running: another candidate leads once etcd takes deletes again.
func TestRunResignFailsNoZombie(t *testing.T) {
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	cli, faults := etcdtest.FaultClient(t)
	a := newCandidate(t, cli, pfx, "a", election.WithTTL(5*time.Second))
	err := a.Run(ctx, func(context.Context) error {
		faults.Fail(etcdtest.IsDelete) // the resign after fn fails
		return nil
	})
	require.NoError(t, err)
	require.Positive(t, faults.Hits())
	assert.False(t, a.IsLeader(), "a stepped down")
	faults.Fail(nil)
	b := newCandidate(t, admin, pfx, "b", election.WithTTL(5*time.Second))
	// Well within a's TTL, which its session keeps renewing: only a delete lets b lead.
	cctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	require.NoError(t, b.Campaign(cctx), "a zombie leader blocks the election")
	require.NoError(t, b.Resign(ctx))
}

// The key name of a failed campaign is never used again: a delete of it may still be on
// its way.
func TestFailedCampaignNameNotReused(t *testing.T) {
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	cli, faults := etcdtest.FaultClient(t)
	leader := newCandidate(t, admin, pfx, "leader")
	c := newCandidate(t, cli, pfx, "c")
	require.NoError(t, leader.Campaign(ctx))
	faults.Fail(etcdtest.IsDelete)
	// The campaign's deadline passes once it waits, its key put.
	short := etcdtest.NewExpiringContext()
	defer short.Expire()
	got := make(chan error, 1)
	go func() { got <- c.Campaign(short) }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.EqualValues(ct, 2, etcdtest.Count(admin, pfx+"/"), "waiting behind the leader")
	}, 10*time.Second, 10*time.Millisecond)
	short.Expire()
	require.ErrorIs(t, recv(t, got, 10*time.Second, "campaign past its deadline"), context.DeadlineExceeded)
	r, err := admin.Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	var failed string
	for _, kv := range r.Kvs {
		if string(kv.Key) != leader.Key() {
			failed = string(kv.Key)
		}
	}
	require.NotEmpty(t, failed, "the failed campaign's key is still there")
	faults.Fail(nil)
	require.NoError(t, leader.Resign(ctx))
	require.NoError(t, c.Campaign(ctx))
	assert.NotEqual(t, failed, c.Key(), "a failed campaign's name was used again")
	require.NoError(t, c.Resign(ctx))
}

// Run's resign after fn is a cleanup: it waits for etcd at most a third of the TTL (at
// least 1s) — with WithSession, of that session's TTL, not of the default one.
func TestRunResignBoundBySessionTTL(t *testing.T) {
	var (
		mu   sync.Mutex
		left time.Duration // time left to the first delete when it was sent
	)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
				invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				if _, ok := req.(*pb.DeleteRangeRequest); ok {
					mu.Lock()
					if d, ok := ctx.Deadline(); ok && left == 0 {
						left = time.Until(d)
					}
					mu.Unlock()
				}
				return invoker(ctx, method, req, reply, cc, opts...)
			})},
	})
	require.NoError(t, err)
	defer cli.Close()
	ctx := etcdtest.Context(t, 30*time.Second)

	ses, err := concurrency.NewSession(cli, concurrency.WithTTL(3))
	require.NoError(t, err)
	defer ses.Close()
	c := newCandidate(t, cli, etcdtest.Prefix(t)+"e", "c", election.WithSession(ses))
	require.NoError(t, c.Run(ctx, func(context.Context) error { return nil }))
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, left, "the resign sent a delete with a deadline")
	assert.LessOrEqual(t, left, time.Second, "a 3s session's cleanups wait at most 1s")
}

// Close ends a Campaign waiting on the same candidate, which returns ErrClosed and
// leaves no key behind, also on a session shared with another candidate (its lease lives
// on): a campaign that went on after Close would make a closed candidate leader.
func TestCloseEndsWaitingCampaign(t *testing.T) {
	t.Parallel()
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	leader := newCandidate(t, admin, pfx, "leader")
	require.NoError(t, leader.Campaign(ctx))

	s, err := concurrency.NewSession(admin, concurrency.WithTTL(5))
	require.NoError(t, err)
	defer s.Close()
	_ = newCandidate(t, admin, pfx+"-other", "other", election.WithSession(s)) // shares s
	waiter := newCandidate(t, admin, pfx, "waiter", election.WithSession(s))
	got := make(chan error, 1)
	go func() { got <- waiter.Campaign(ctx) }()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.EqualValues(c, 2, etcdtest.Count(admin, pfx+"/"), "waiting behind the leader")
	}, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, waiter.Close())
	assert.ErrorIs(t, recv(t, got, 10*time.Second, "Campaign after Close"), election.ErrClosed)
	assert.EqualValues(t, 1, etcdtest.Count(admin, pfx+"/"), "the waiting key is deleted")
	require.NoError(t, leader.Resign(ctx))
	assert.Zero(t, etcdtest.Count(admin, pfx+"/"), "nobody leads")
}

// Close is bounded while etcd answers nothing: it waits a third of the TTL (at least
// 1s) per call to etcd (the resign, the revoke), and the leader's key goes once etcd
// answers again (the revoke or the delete lands, or the lease expires).
func TestCloseBoundedWhileEtcdDoesNotAnswer(t *testing.T) {
	t.Parallel()
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	cli, faults := etcdtest.FaultClient(t)
	c, err := election.New(cli, pfx, "c", election.WithTTL(3*time.Second))
	require.NoError(t, err)
	require.NoError(t, c.Campaign(ctx))
	require.EqualValues(t, 1, etcdtest.Count(admin, pfx+"/"))

	faults.Stall(func(string, any) bool { return true }) // no request is answered from now on
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- c.Close() }()
	// Bound: 1s for the resign, 1s for the revoke; checked with room to spare.
	select {
	case <-closed:
		t.Logf("Close returned after %v", time.Since(start))
	case <-time.After(3 * 2 * time.Second):
		faults.Stall(nil)
		<-closed
		t.Fatal("Close is not bounded while etcd does not answer")
	}
	faults.Stall(nil)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, etcdtest.Count(admin, pfx+"/"), "the leader's key is gone")
	}, 10*time.Second, 50*time.Millisecond)
}
