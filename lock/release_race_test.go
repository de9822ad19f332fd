package lock_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// releaseRace orders one Unlock against a broken watch: once armed, new watch streams
// fail, the re-read of key waits until our delete of it has been applied, and the
// delete's reply waits until the holding has ended (done) — as when a watch breaks
// while an Unlock is in flight and the reply comes late.
type releaseRace struct {
	mu      sync.Mutex
	armed   bool
	key     string
	done    <-chan struct{}
	applied chan struct{}
	reread  chan struct{}
}

func (r *releaseRace) state() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.armed, r.key
}

func (r *releaseRace) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	armed, key := r.state()
	if !armed {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	switch q := req.(type) {
	case *pb.RangeRequest:
		if string(q.Key) == key {
			select {
			case <-r.reread:
			default:
				close(r.reread)
			}
			<-r.applied
		}
	case *pb.DeleteRangeRequest:
		err := invoker(ctx, method, req, reply, cc, opts...)
		close(r.applied)
		r.mu.Lock()
		done := r.done
		r.mu.Unlock()
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (r *releaseRace) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if armed, _ := r.state(); armed && method == "/etcdserverpb.Watch/Watch" {
		return nil, etcdtest.ErrInjected
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// An Unlock is a release, never a loss, even when the holding's watch breaks while the
// delete is in flight and the re-read after the break finds the key already gone.
func TestUnlockRacingWatchBreakIsNotALoss(t *testing.T) {
	t.Parallel()
	r := &releaseRace{applied: make(chan struct{}), reread: make(chan struct{})}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(r.unary),
			grpc.WithChainStreamInterceptor(r.stream),
		},
	})
	require.NoError(t, err)
	defer cli.Close()
	ctx := etcdtest.Context(t, 30*time.Second)

	m, err := lock.New(cli, etcdtest.Prefix(t)+"l", lock.WithTTL(5*time.Second))
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, m.Lock(ctx))

	r.mu.Lock()
	r.armed, r.key = true, m.Key()
	r.done = m.Done() // starts the watch, which breaks at once
	r.mu.Unlock()
	<-r.reread // the re-read after the break is under way

	require.NoError(t, m.Unlock(ctx))
	<-m.Done()
	require.NoError(t, m.Err(), "an Unlock was reported as a loss")
}
