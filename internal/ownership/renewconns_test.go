package ownership

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// keepAliveCounter counts the keep-alive requests a client's connections carry: on the
// client's own connection (where requests take the endpoints in turn) and on others
// (the connections the client's Dial makes); and the keep-alive streams they open.
type keepAliveCounter struct {
	main          atomic.Pointer[grpc.ClientConn]
	onMain, own   atomic.Int64 // requests
	streams       atomic.Int64 // streams opened, or tried
	authenticated atomic.Int64 // Authenticate requests
}

func (k *keepAliveCounter) option() grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if method != "/etcdserverpb.Lease/LeaseKeepAlive" {
			return streamer(ctx, desc, cc, method, opts...)
		}
		k.streams.Add(1)
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		n := &k.own
		if cc == k.main.Load() {
			n = &k.onMain
		}
		return countedStream{cs, n}, nil
	})
}

// authOption counts the Authenticate requests of a client (made on its own connection
// before each stream it opens, when it has a user name and password).
func (k *keepAliveCounter) authOption() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == "/etcdserverpb.Auth/Authenticate" {
			k.authenticated.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

type countedStream struct {
	grpc.ClientStream
	n *atomic.Int64
}

func (c countedStream) SendMsg(m any) error {
	c.n.Add(1)
	return c.ClientStream.SendMsg(m)
}

// renewingSession grants a lease of ttl (renewed every second) to a client of endpoints
// whose keep-alive requests and streams k counts; both end with t.
func renewingSession(t *testing.T, k *keepAliveCounter, endpoints []string, ttl time.Duration) *Session {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{k.option()},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	k.main.Store(cli.ActiveConnection())
	ses, err := Grant(etcdtest.Context(t, 20*time.Second), cli, ttl, nil)
	require.NoError(t, err)
	t.Cleanup(func() { ses.Release() })
	return ses
}

// A session's renewals take no turn on its client's connection, where the
// application's requests take the endpoints in turn: a renewal a second there could
// keep an application's retries on a silent member (see renewConns).
func TestRenewalsTakeNoTurnOnTheClientsConnection(t *testing.T) {
	var k keepAliveCounter
	ses := renewingSession(t, &k, append(etcdtest.Endpoints(), deadEndpoint(t)), 2*time.Second)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, k.own.Load(), int64(3), "renewals on the session's own connection")
	}, 10*time.Second, 20*time.Millisecond)
	assert.NoError(t, ses.Alive())
	assert.Zero(t, k.onMain.Load(), "renewals on the client's connection")
}

// A client of one endpoint has no member to choose and no turn to take from anyone:
// its sessions renew on its own connection, sharing the fate of its requests as
// etcd's keep-alive does (a connection that stops carrying them costs the lease, and
// another owner takes over).
func TestRenewalsOfAClientOfOneEndpointGoOnItsConnection(t *testing.T) {
	var k keepAliveCounter
	ses := renewingSession(t, &k, etcdtest.Endpoints()[:1], 2*time.Second)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, k.onMain.Load(), int64(3), "renewals on the client's connection")
	}, 10*time.Second, 20*time.Millisecond)
	assert.NoError(t, ses.Alive())
	assert.Zero(t, k.own.Load(), "renewals on connections of their own")
}

// While a member is silent, a session's renewals go to the member that answered the
// last one: after the first renewal the silence makes wait and then hedges to the
// other member, each renewal is one request to it, and the session lives on.
func TestRenewalsStayWithTheMemberThatAnswers(t *testing.T) {
	const ttl = 2 * time.Second
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t)
	var k keepAliveCounter
	cli := pinnedClient(t, c, k.option())
	k.main.Store(cli.ActiveConnection())
	ses, err := Grant(ctx, cli, ttl, nil)
	require.NoError(t, err)
	defer ses.Release()
	// Renewals answered by member 1, the client's only endpoint (on the client's
	// connection, until silenceMember1 gives it a second endpoint).
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, k.onMain.Load()+k.own.Load(), int64(2))
	}, 5*time.Second, 20*time.Millisecond)
	defer silenceMember1(t, ctx, c, cli, c.Client(2), pfx)()

	member2 := c.Members[2].GRPCURL
	moved := func(c *assert.CollectT) {
		ses.renewals.mu.Lock()
		defer ses.renewals.mu.Unlock()
		assert.Equal(c, member2, ses.renewals.last, "the member that answered the last renewal")
	}
	assert.EventuallyWithT(t, moved, 3*ttl, 10*time.Millisecond)
	// From here on: one request per renewal, each renewal moving the deadline on.
	requests, renewals := k.own.Load(), 0
	last := ses.Deadline()
	tick := time.NewTicker(10 * time.Millisecond) // a renewal is every second
	defer tick.Stop()
	for end := time.Now().Add(4 * ttl); time.Now().Before(end); {
		<-tick.C
		if d := ses.Deadline(); !d.Equal(last) {
			renewals++
			last = d
		}
	}
	require.NoError(t, ses.Alive(), "the session through the silence")
	assert.GreaterOrEqual(t, renewals, 4, "renewals during 4 TTLs of silence")
	assert.LessOrEqual(t, k.own.Load()-requests, int64(renewals+1), "requests for %d renewals", renewals)
}

// hasRenewalConn reports whether ses's client has a renewal connection to ep.
func hasRenewalConn(ses *Session, ep string) bool {
	ses.renewals.mu.Lock()
	defer ses.renewals.mu.Unlock()
	return ses.renewals.conns[ep] != nil
}

// deadEndpoint returns the address of a port nobody listens on: a connection to it is
// refused at once.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// A renewal whose member refuses the connection goes on to the next member at once,
// not at the hedge's time (half the time left: 24s for a 60s lease): a connection
// refused is a refusal like a member without a leader.
func TestRenewalRefusedConnectionGoesOnAtOnce(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   append([]string{deadEndpoint(t)}, etcdtest.Endpoints()...),
		DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	require.NoError(t, err)
	defer cli.Close()
	ctx := etcdtest.Context(t, 30*time.Second)
	ses, err := Grant(ctx, cli, time.Minute, nil)
	require.NoError(t, err)
	defer ses.Release()
	granted := ses.Deadline()
	// The first renewal is due a second after the grant; its first request goes to the
	// client's first endpoint, the dead one.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, ses.Deadline().After(granted), "renewed")
	}, 6*time.Second, 20*time.Millisecond)
	assert.NoError(t, ses.Alive())
}

// The sessions of one client renew on the same connections, one per endpoint at
// most however many sessions there are: not a connection of each session's own to
// each member (a lock per session, a thousand locks: thousands of connections).
func TestSessionsOfAClientShareRenewalConnections(t *testing.T) {
	var conns sync.Map // *grpc.ClientConn that carried a renewal
	var main atomic.Pointer[grpc.ClientConn]
	count := grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if method == "/etcdserverpb.Lease/LeaseKeepAlive" && cc != main.Load() {
			conns.Store(cc, true)
		}
		return streamer(ctx, desc, cc, method, opts...)
	})
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: append(etcdtest.Endpoints(), deadEndpoint(t)), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{count},
	})
	require.NoError(t, err)
	defer cli.Close()
	main.Store(cli.ActiveConnection())
	ctx := etcdtest.Context(t, 20*time.Second)
	const n = 5
	var sessions []*Session
	for range n {
		ses, err := Grant(ctx, cli, 2*time.Second, nil)
		require.NoError(t, err)
		defer ses.Release()
		sessions = append(sessions, ses)
	}
	granted := make([]time.Time, n)
	for i, ses := range sessions {
		granted[i] = ses.Deadline()
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		for i, ses := range sessions {
			assert.True(c, ses.Deadline().After(granted[i]), "session %d renewed", i)
		}
	}, 10*time.Second, 20*time.Millisecond)
	used := 0
	conns.Range(func(_, _ any) bool { used++; return true })
	assert.Positive(t, used, "connections carrying renewals")
	assert.LessOrEqual(t, used, len(cli.Endpoints()), "connections carrying the renewals of %d sessions", n)
}

// An endpoint the client no longer has (SetEndpoints) keeps no renewal connection:
// the renewals go to the endpoints the client has, and the connection to the one
// removed is closed.
func TestRenewalConnectionClosedWithItsEndpoint(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 30*time.Second)
	m0, m1, m2 := c.Members[0].GRPCURL, c.Members[1].GRPCURL, c.Members[2].GRPCURL
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{m0, m1}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	require.NoError(t, err)
	defer cli.Close()
	ses, err := Grant(ctx, cli, 2*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, hasRenewalConn(ses, m0), "a renewal through the first endpoint")
	}, 5*time.Second, 20*time.Millisecond)
	cli.SetEndpoints(m1, m2)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.False(c, hasRenewalConn(ses, m0), "a connection to the endpoint removed")
		assert.True(c, hasRenewalConn(ses, m1), "a connection to the first endpoint left")
	}, 5*time.Second, 20*time.Millisecond)
	assert.NoError(t, ses.Alive())
}

// A member without a leader refuses a renewal at once: the renewal goes on at once
// only to a member it has not tried yet. A client of a member without a leader and of
// an endpoint where nothing listens sends each one request, not six in a row that
// they refuse alike (and six again at each retry, for each session, while the cluster
// has no leader).
func TestRefusedRenewalNotResentToTheSameMember(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 30*time.Second)
	var k keepAliveCounter
	cli := pinnedClient(t, c, k.option())
	lease, err := cli.Grant(ctx, 30)
	require.NoError(t, err)
	c.StopMember(0)
	c.StopMember(2)
	ses := newSession(cli, lease.ID, nil, nil)
	defer ses.renewals.release() // no tracker runs
	defer ses.streams.close()
	ses.ttl, ses.deadline = 30*time.Second, time.Now().Add(20*time.Second)
	close(ses.confirmed)
	// Member 1 no longer has a leader once it refuses a new stream. (A request on a
	// stream opened before waits for a leader: one given up ends its stream.)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := ses.streams.keepAliveOnce(actx, "", lease.ID, false)
		assert.ErrorIs(c, err, rpctypes.ErrNoLeader)
	}, 10*time.Second, 50*time.Millisecond)
	cli.SetEndpoints(c.Members[1].GRPCURL, deadEndpoint(t))
	before := k.streams.Load()
	assert.Error(t, ses.renew())
	assert.Equal(t, int64(2), k.streams.Load()-before, "requests of a renewal to the client's two endpoints")
}

// A renewal's requests go to every member before any gets a second, even when another
// session of the client has a renewal answered by another member meanwhile.
func TestRenewalOrderTakenOncePerRenewal(t *testing.T) {
	eps := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	r := renewConnsOf(cli)
	defer r.release()
	r.answered(eps[1])
	order := r.order()
	assert.Equal(t, []string{eps[1], eps[2], eps[0]}, order)
	r.answered(eps[0]) // another session's renewal, answered meanwhile
	assert.Equal(t, []string{eps[1], eps[2], eps[0]}, order, "the renewal's order")
	assert.Equal(t, []string{eps[0], eps[1], eps[2]}, r.order(), "the next renewal's")
	assert.Equal(t, eps, cli.Endpoints(), "the client's list untouched")
}

// A connection to an endpoint the client no longer lists is closed at the next renewal
// even when that renewal fails: while the client knows only endpoints where nothing
// listens, renewals fail, and the connection to the member they went to closes.
func TestRenewalConnectionClosedWhileRenewalsFail(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	ctx := etcdtest.Context(t, 30*time.Second)
	m0 := c.Members[0].GRPCURL
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m0, deadEndpoint(t)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	// 10s: renewed every second, lost about 8s after the last renewal landed.
	ses, err := Grant(ctx, cli, 10*time.Second, nil)
	require.NoError(t, err)
	defer ses.Release()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, hasRenewalConn(ses, m0), "a renewal through the member")
	}, 5*time.Second, 20*time.Millisecond)
	cli.SetEndpoints(deadEndpoint(t), deadEndpoint(t)) // nothing listens there
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.False(c, hasRenewalConn(ses, m0), "a connection to the endpoint removed")
	}, 4*time.Second, 20*time.Millisecond)
	assert.NoError(t, ses.Err(), "the session lives on: its connections are not all closed with it")
}

// A session renews on one keep-alive stream per member, kept open: not a stream per
// renewal. Sessions do not share one: none waits behind another's renewal.
func TestRenewalsOfASessionShareOneKeepAliveStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoints []string
	}{
		{"one endpoint", etcdtest.Endpoints()[:1]},
		{"two endpoints", append(etcdtest.Endpoints()[:1:1], deadEndpoint(t))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 5s leases, renewed every second: a renewal is hedged (on a new stream, with
			// one endpoint) only when unanswered after about 1.7s.
			const ttl = 5 * time.Second
			var k keepAliveCounter
			sessions := []*Session{renewingSession(t, &k, tc.endpoints, ttl)}
			cli := sessions[0].Client()
			for range 2 {
				ses, err := Grant(etcdtest.Context(t, 10*time.Second), cli, ttl, nil)
				require.NoError(t, err)
				t.Cleanup(func() { ses.Release() })
				sessions = append(sessions, ses)
			}
			assert.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.GreaterOrEqual(c, k.onMain.Load()+k.own.Load(), int64(3*len(sessions)), "renewals")
			}, 15*time.Second, 20*time.Millisecond)
			for i, ses := range sessions {
				assert.NoError(t, ses.Alive(), "session %d", i)
			}
			assert.Equal(t, int64(len(sessions)), k.streams.Load(), "keep-alive streams of %d sessions for %d requests",
				len(sessions), k.onMain.Load()+k.own.Load())
		})
	}
}

// With a user name and password, the client authenticates before every stream it
// opens, and etcd checks the password with bcrypt: renewals on one stream authenticate
// once, not once per renewal.
func TestRenewalsAuthenticateOnce(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	ctx := etcdtest.Context(t, 30*time.Second)
	admin := c.Client(0)
	_, err := admin.UserAdd(ctx, "root", "secret")
	require.NoError(t, err)
	_, err = admin.UserGrantRole(ctx, "root", "root")
	require.NoError(t, err)
	_, err = admin.AuthEnable(ctx)
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		endpoints []string
	}{
		{"one endpoint", []string{c.Members[0].GRPCURL}},
		{"two endpoints", []string{c.Members[0].GRPCURL, deadEndpoint(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k keepAliveCounter
			cli, err := clientv3.New(clientv3.Config{
				Endpoints: tc.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
				Username: "root", Password: "secret",
				DialOptions: []grpc.DialOption{k.option(), k.authOption()},
			})
			require.NoError(t, err)
			defer cli.Close()
			k.main.Store(cli.ActiveConnection())
			ses, err := Grant(ctx, cli, 5*time.Second, nil) // renewed every second
			require.NoError(t, err)
			defer ses.Release()
			before := k.authenticated.Load()
			assert.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.GreaterOrEqual(c, k.onMain.Load()+k.own.Load(), int64(4), "renewals")
			}, 10*time.Second, 20*time.Millisecond)
			assert.NoError(t, ses.Alive())
			assert.LessOrEqual(t, k.authenticated.Load()-before, int64(1),
				"Authenticate requests for %d renewals", k.onMain.Load()+k.own.Load())
		})
	}
}

// A renewal that stops waiting for its reply ends the stream it went on: the reply,
// should it come, must not be taken for a later request's, and the next renewal opens a
// new stream.
func TestAbandonedRenewalEndsItsStream(t *testing.T) {
	t.Parallel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{slowReplies(time.Second)},
	})
	require.NoError(t, err)
	defer cli.Close()
	ctx := etcdtest.Context(t, 10*time.Second)
	lease, err := cli.Grant(ctx, 30)
	require.NoError(t, err)
	conns := renewConnsOf(cli)
	defer conns.release()
	rs := newRenewStreams(conns)
	defer rs.close()
	k, err := rs.stream(ctx, "", false)
	require.NoError(t, err)
	_, err = k.renew(ctx, lease.ID)
	require.NoError(t, err)
	// Sent at once, answered after a second: given up after 100ms.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = k.renew(short, lease.ID)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, k.alive(), "the stream of an abandoned request")
	next, err := rs.stream(ctx, "", false)
	require.NoError(t, err)
	assert.NotSame(t, k, next, "the stream after it")
	resp, err := next.renew(ctx, lease.ID)
	require.NoError(t, err)
	assert.Positive(t, resp.TTL)
}
