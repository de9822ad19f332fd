package lock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// replyGate holds every LeaseKeepAlive reply, while armed, after it has arrived and
// until released: the tracker is then between "reply received" and "reply processed"
// (renew's s.mu.Lock), as after a scheduling delay.
type replyGate struct {
	mu      sync.Mutex
	armed   bool
	heldAny bool
	held    chan struct{} // closed when the first reply is held
	release chan struct{}
}

func (g *replyGate) take() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.armed {
		return nil
	}
	if !g.heldAny {
		g.heldAny = true
		close(g.held)
	}
	return g.release
}

type gatedStream struct {
	grpc.ClientStream
	g *replyGate
}

func (s *gatedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		if ch := s.g.take(); ch != nil {
			<-ch
		}
	}
	return err
}

func gatedClient(t *testing.T, g *replyGate) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(
			func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
				streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				cs, err := streamer(ctx, desc, cc, method, opts...)
				if err != nil || method != "/etcdserverpb.Lease/LeaseKeepAlive" {
					return cs, err
				}
				return &gatedStream{ClientStream: cs, g: g}, nil
			})},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Loss is for good. A keep-alive reply that arrives before the session's deadline but
// is processed just after it (renew takes s.mu after keepAliveOnce returns) must not
// extend the deadline of a session that Alive has already declared lost in between.
// Else a check at the deadline ends the holding, then the session lives on: the
// holding's key stays on a lease we keep renewing, Unlock says ErrNotHeld and deletes
// nothing, and the lock is dead for everyone — and for our own next Lock, which waits
// behind our own old key — until Close.
func TestLateAckDoesNotResurrectSession(t *testing.T) {
	t.Parallel()
	g := &replyGate{held: make(chan struct{}), release: make(chan struct{})}
	cli := gatedClient(t, g)
	admin := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 90*time.Second)
	key := etcdtest.Prefix(t) + "l"

	m, err := lock.New(cli, key, lock.WithTTL(3*time.Second))
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, m.Lock(ctx))

	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
	<-g.held // the next renewal's reply has arrived; its processing (and that of any
	// request hedging it) is delayed
	// A check after the deadline (Err calls Holding.Check) ends the holding.
	for m.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	g.mu.Lock()
	g.armed = false
	g.mu.Unlock()
	close(g.release) // the delayed replies are processed now, past the deadline
	require.ErrorIs(t, m.Err(), lock.ErrLost)
	require.ErrorIs(t, m.Unlock(ctx), lock.ErrNotHeld)

	// A lease we really gave up is revoked as soon as etcd answers, or expires within
	// its TTL: either way the key goes (checked with a deadline of three TTLs).
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, etcdtest.Count(admin, key+"/"),
			"a holding we declared lost left its key on a lease we still renew: the lock is dead")
	}, 9*time.Second, 100*time.Millisecond)

	other, err := lock.New(admin, key, lock.WithTTL(3*time.Second))
	require.NoError(t, err)
	defer other.Close()
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err = other.Lock(short)
	require.False(t, errors.Is(err, context.DeadlineExceeded), "nobody can take the lock")
}
