package barrier_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-monitor/etcd-monitor/barrier"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// afterRead returns a client that closes the returned channel once its first Range
// request has been answered.
func afterRead(t *testing.T) (*clientv3.Client, <-chan struct{}) {
	read := make(chan struct{})
	var once sync.Once
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				err := invoker(ctx, method, req, reply, cc, opts...)
				if method == "/etcdserverpb.KV/Range" {
					once.Do(func() { close(read) })
				}
				return err
			})},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli, read
}

// Wait returns once the hold it found ends, even if another Barrier holds the barrier
// again at once: the package doc says so, rather than promise that nobody holds it when
// Wait returns.
func TestBarrierWaitReturnsOnReleaseEvenIfHeldAgain(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "gate"
	first, err := barrier.New(etcdtest.Client(t), key)
	require.NoError(t, err)
	defer first.Close()
	second, err := barrier.New(etcdtest.Client(t), key)
	require.NoError(t, err)
	defer second.Close()
	require.NoError(t, first.Hold(ctx))

	cli, read := afterRead(t)
	waiter, err := barrier.New(cli, key)
	require.NoError(t, err)
	defer waiter.Close()
	waited := make(chan error, 1)
	go func() { waited <- waiter.Wait(ctx) }()
	<-read // the waiter found the barrier held by first
	require.NoError(t, first.Release(ctx))
	require.NoError(t, second.Hold(ctx))
	select {
	case err := <-waited:
		assert.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("Wait missed the release")
	}
}

// holdWatch is a client whose watch streams receive nothing until breakWatch ends them
// with an error, as a broken connection would.
type holdWatch struct {
	mu       sync.Mutex
	held     bool
	broken   chan struct{}
	read     chan struct{} // closed once the first Range is answered
	readOnce sync.Once
}

type heldStream struct {
	grpc.ClientStream
	h *holdWatch
}

func (s heldStream) RecvMsg(m any) error {
	s.h.mu.Lock()
	held := s.h.held
	s.h.mu.Unlock()
	if held {
		<-s.h.broken
		return status.Error(codes.Aborted, "etcdtest: watch stream broken")
	}
	return s.ClientStream.RecvMsg(m)
}

func (h *holdWatch) breakWatch() {
	h.mu.Lock()
	h.held = false
	h.mu.Unlock()
	close(h.broken)
}

func (h *holdWatch) client(t *testing.T) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(
			func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				s, err := streamer(ctx, desc, cc, method, opts...)
				if err != nil || method != "/etcdserverpb.Watch/Watch" {
					return s, err
				}
				return heldStream{ClientStream: s, h: h}, nil
			}), grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				err := invoker(ctx, method, req, reply, cc, opts...)
				if method == "/etcdserverpb.KV/Range" {
					h.readOnce.Do(func() { close(h.read) })
				}
				return err
			})},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// A waiter whose watch breaks while the barrier is released and held again by another
// Barrier still returns: the hold it found has ended.
func TestBarrierWaitSurvivesABrokenWatch(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "gate"
	first, err := barrier.New(etcdtest.Client(t), key)
	require.NoError(t, err)
	defer first.Close()
	second, err := barrier.New(etcdtest.Client(t), key)
	require.NoError(t, err)
	defer second.Close()
	require.NoError(t, first.Hold(ctx))

	h := &holdWatch{held: true, broken: make(chan struct{}), read: make(chan struct{})}
	waiter, err := barrier.New(h.client(t), key)
	require.NoError(t, err)
	defer waiter.Close()
	waited := make(chan error, 1)
	go func() { waited <- waiter.Wait(ctx) }()
	<-h.read // the waiter found the barrier held by first; its watch receives nothing
	require.NoError(t, first.Release(ctx))
	require.NoError(t, second.Hold(ctx))
	h.breakWatch()
	select {
	case err := <-waited:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second): // the next release would come only at Close
		t.Fatal("Wait missed the release while its watch was broken")
	}
}
