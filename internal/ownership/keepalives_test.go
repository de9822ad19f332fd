package ownership

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// slowReplies makes every keep-alive reply a client receives take d more, one after the
// other on a stream, as a member that takes d to answer each renewal would (etcd
// answers a stream's requests one at a time: a follower forwards each to the leader,
// a round trip each, before it reads the next).
func slowReplies(d time.Duration) grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || method != "/etcdserverpb.Lease/LeaseKeepAlive" {
			return cs, err
		}
		return delayedStream{cs, ctx, d}, nil
	})
}

type delayedStream struct {
	grpc.ClientStream
	ctx context.Context
	d   time.Duration
}

func (s delayedStream) RecvMsg(m any) error {
	if err := s.ClientStream.RecvMsg(m); err != nil {
		return err
	}
	t := time.NewTimer(s.d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// A renewal whose reply comes later than a hedge back to the same member but before the
// lease's deadline lands: the hedge backs the request up, it does not cancel it. Each
// renewal is sent when the last one lands (the renewals are slow), with the time left
// until the deadline (the TTL less Margin, less the reply's delay); a hedge goes at half
// that, and another at half the time then left.
//   - One endpoint, a 12s lease, replies taking 4s: 6s left, the hedge goes back to the
//     member at 3s, and the reply lands with 2s to spare.
//   - Two endpoints, a 20s lease, replies taking 7.6s: 9.07s left, the first hedge goes
//     to the dead endpoint at 4.53s, the second back to the member at 6.8s, and the
//     reply lands with 1.47s to spare.
func TestSlowRenewalNotCancelledByItsHedge(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoints func(t *testing.T) []string
		ttl, lag  time.Duration
	}{
		{"one endpoint", func(*testing.T) []string { return etcdtest.Endpoints()[:1] }, 12 * time.Second, 4 * time.Second},
		{"two endpoints", func(t *testing.T) []string { return append(etcdtest.Endpoints()[:1:1], deadEndpoint(t)) },
			20 * time.Second, 7600 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cli, err := clientv3.New(clientv3.Config{
				Endpoints: tc.endpoints(t), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
				DialOptions: []grpc.DialOption{slowReplies(tc.lag)},
			})
			require.NoError(t, err)
			defer cli.Close()
			ses, err := Grant(etcdtest.Context(t, 10*time.Second), cli, tc.ttl, nil)
			require.NoError(t, err)
			defer ses.Release()
			// Renewals landed after the slow first one: the deadline moves past the
			// grant's by more than the reply's delay twice.
			granted := ses.Deadline()
			assert.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.True(c, ses.Deadline().After(granted.Add(2*tc.lag)), "deadline %v after the grant's", ses.Deadline().Sub(granted))
			}, 6*tc.lag, 50*time.Millisecond)
			assert.NoError(t, ses.Err(), "the session with renewals answered in %v", tc.lag)
		})
	}
}

// A client of one endpoint renews on its own connection, sharing the fate of the
// application's requests: moved to another member (SetEndpoints) that then goes silent,
// its session is lost, as its application's requests fail, and another owner takes
// over. Its renewals must not stay with the member it left.
func TestRenewalsOfAClientOfOneEndpointFollowSetEndpoints(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	cli := c.Client(0)
	ses, err := Grant(etcdtest.Context(t, 10*time.Second), cli, 2*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	granted := ses.Deadline()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, ses.Deadline().After(granted), "a renewal through member 0")
	}, 10*time.Second, 20*time.Millisecond)
	cli.SetEndpoints(c.Members[1].GRPCURL)
	c.Blackhole(1)
	defer c.Unblackhole(1)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Error(c, ses.Err(), "the session of a client whose one member is silent")
	}, 15*time.Second, 20*time.Millisecond)
}

// laggedReplies delivers every keep-alive reply a client receives d after it arrives,
// the replies of a stream pipelined, as a link with d of latency would.
func laggedReplies(d time.Duration) grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || method != "/etcdserverpb.Lease/LeaseKeepAlive" {
			return cs, err
		}
		l := &laggedStream{ClientStream: cs, ctx: ctx, d: d, replies: make(chan laggedReply, 1024)}
		go l.read()
		return l, nil
	})
}

type laggedStream struct {
	grpc.ClientStream
	ctx     context.Context
	d       time.Duration
	replies chan laggedReply // never full: the stream ends first
}

type laggedReply struct {
	resp *pb.LeaseKeepAliveResponse
	err  error
	at   time.Time
}

func (l *laggedStream) read() {
	for {
		resp := &pb.LeaseKeepAliveResponse{}
		err := l.ClientStream.RecvMsg(resp)
		l.replies <- laggedReply{resp, err, time.Now()}
		if err != nil {
			return
		}
	}
}

func (l *laggedStream) RecvMsg(m any) error {
	r := <-l.replies
	if r.err != nil {
		return r.err
	}
	t := time.NewTimer(time.Until(r.at.Add(l.d)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
	dst := m.(*pb.LeaseKeepAliveResponse)
	dst.Header, dst.ID, dst.TTL = r.resp.Header, r.resp.ID, r.resp.TTL
	return nil
}

// sessionsRenewed grants n leases of ttl to cli and checks that each is renewed until its
// deadline is past the grant's by more than moved.
func sessionsRenewed(t *testing.T, cli *clientv3.Client, n int, ttl, moved time.Duration) {
	t.Helper()
	var sessions []*Session
	var granted []time.Time
	for range n {
		ses, err := Grant(etcdtest.Context(t, 10*time.Second), cli, ttl, nil)
		require.NoError(t, err)
		t.Cleanup(func() { ses.Release() })
		sessions = append(sessions, ses)
		granted = append(granted, ses.Deadline())
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		for i, ses := range sessions {
			assert.True(c, ses.Deadline().After(granted[i].Add(moved)), "session %d: deadline %v after the grant's", i, ses.Deadline().Sub(granted[i]))
		}
	}, 40*time.Second, 50*time.Millisecond)
	for i, ses := range sessions {
		assert.NoError(t, ses.Err(), "session %d", i)
	}
}

// No session's renewal fails another's: a renewal that stops waiting for a request
// (answered through another first) must not fail the requests of other sessions, which
// would land in time. Five 12s leases of a client of one endpoint with 4s of latency,
// each of which is renewed in time on its own (TestSlowRenewalNotCancelledByItsHedge).
func TestSlowRenewalsOfSessionsNotCancelledByEachOther(t *testing.T) {
	t.Parallel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints()[:1], DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{laggedReplies(4 * time.Second)},
	})
	require.NoError(t, err)
	defer cli.Close()
	sessionsRenewed(t, cli, 5, 12*time.Second, 8*time.Second)
}

// A member that takes 150ms to answer each renewal (a follower forwarding each to a
// distant leader) answers the renewals of eight 2s leases renewed together in time
// (667ms left each): not one after the other, 1.2s for the last.
func TestRenewalsOfSessionsNotQueuedBehindEachOther(t *testing.T) {
	t.Parallel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints()[:1], DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{slowReplies(150 * time.Millisecond)},
	})
	require.NoError(t, err)
	defer cli.Close()
	sessionsRenewed(t, cli, 8, 2*time.Second, 4*time.Second)
}
