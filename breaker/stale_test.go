package breaker_test

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

	"github.com/etcd-monitor/etcd-monitor/breaker"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// A call that started while the breaker was closed and fails after another instance
// tripped it, once the cool-down is over, must not make this instance believe in a new
// cool-down: its trip finds the breaker open already, and the instance reads what etcd
// holds (half-open) instead of guessing.
func TestLateFailureAfterAnotherTripSeesHalfOpen(t *testing.T) {
	t.Parallel() // waits out cool-downs; its own prefix
	ctx := etcdtest.Context(t, 30*time.Second)
	opts := []breaker.Option{breaker.WithFailureThreshold(1), breaker.WithCooldown(time.Second), breaker.WithProbeTimeout(time.Second)}
	bs := newFleet(t, 2, sharedClients(t), opts...)
	a, b := bs[0], bs[1]
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Closed, a.State()) }, 5*time.Second, 10*time.Millisecond)

	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Do(ctx, func(context.Context) error {
			close(started)
			<-release
			return errBoom
		})
	}()
	<-started
	require.NoError(t, b.Trip(ctx))
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.HalfOpen, a.State()) }, 10*time.Second, 10*time.Millisecond)
	close(release)
	require.ErrorIs(t, <-done, errBoom)
	assert.Equal(t, breaker.HalfOpen, a.State(), "etcd's breaker is half-open; the late failure must not start a cool-down here only")
	assert.NoError(t, a.Do(ctx, succeed), "the probe goes through")
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Closed, b.State()) }, 5*time.Second, 10*time.Millisecond)
}

// gate holds the watch responses of one client while held, and lets them through one
// at a time, so that a test can have a watch lag behind the client's own writes.
type gate struct {
	mu       sync.Mutex
	held     bool
	arrived  chan struct{} // a response arrived and is held
	permit   chan struct{} // lets one held response through
	let      chan struct{} // closed: everything goes through
	letGoOne sync.Once
}

func newGate() *gate {
	return &gate{arrived: make(chan struct{}, 64), permit: make(chan struct{}, 64), let: make(chan struct{})}
}

func (g *gate) hold() {
	g.mu.Lock()
	g.held = true
	g.mu.Unlock()
}

func (g *gate) letGo() { g.letGoOne.Do(func() { close(g.let) }) }

// waitArrived waits for a held response.
func (g *gate) waitArrived(ctx context.Context, t *testing.T) {
	select {
	case <-g.arrived:
	case <-ctx.Done():
		t.Fatal("no watch response arrived")
	}
}

type gatedStream struct {
	grpc.ClientStream
	g *gate
}

func (s gatedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	s.g.mu.Lock()
	held := s.g.held
	s.g.mu.Unlock()
	if held && err == nil {
		select {
		case s.g.arrived <- struct{}{}:
		default:
		}
		select {
		case <-s.g.permit:
		case <-s.g.let:
		}
	}
	return err
}

func (g *gate) client(t *testing.T) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(
			func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				s, err := streamer(ctx, desc, cc, method, opts...)
				if err != nil || method != "/etcdserverpb.Watch/Watch" {
					return s, err
				}
				return gatedStream{ClientStream: s, g: g}, nil
			})},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		g.letGo()
		cli.Close()
	})
	return cli
}

// An instance's own trip is not undone by an older event its watch delivers late: here
// another instance's Reset, made just before the trip.
func TestOwnTripNotUndoneByAnOlderEvent(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	prefix := etcdtest.Prefix(t)
	g := newGate()
	a, err := breaker.New(g.client(t), prefix, breaker.WithCooldown(30*time.Second))
	require.NoError(t, err)
	defer a.Close()
	other, err := breaker.New(etcdtest.Client(t), prefix, breaker.WithCooldown(30*time.Second))
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, other.Trip(ctx))
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Open, a.State()) }, 5*time.Second, 10*time.Millisecond)

	g.hold()
	defer g.letGo()
	require.NoError(t, other.Reset(ctx))
	g.waitArrived(ctx, t) // the Reset's events are on their way to a, held
	require.NoError(t, a.Trip(ctx))
	require.Equal(t, breaker.Open, a.State(), "a's own trip")
	g.permit <- struct{}{} // the Reset's events only; the trip's stay held
	g.waitArrived(ctx, t)  // the watch has handed on the Reset's events and reads on
	assert.Never(t, func() bool { return a.State() != breaker.Open }, 500*time.Millisecond, time.Millisecond,
		"the Reset came before a's trip: a's breaker stays open")
	called := false
	assert.ErrorIs(t, a.Do(ctx, func(context.Context) error { called = true; return nil }), breaker.ErrOpen)
	assert.False(t, called)
	g.letGo()
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Open, other.State()) }, 5*time.Second, 10*time.Millisecond)
}

// The threshold is per instance: failures seen by different instances are not added up,
// and a success on one instance does not reset another's count.
func TestThresholdIsPerInstance(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	bs := newFleet(t, 3, sharedClients(t), breaker.WithFailureThreshold(3), breaker.WithCooldown(30*time.Second))
	for _, b := range bs {
		require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Closed, b.State()) }, 5*time.Second, 10*time.Millisecond)
	}
	for _, b := range bs {
		for range 2 {
			assert.ErrorIs(t, b.Do(ctx, fail), errBoom)
		}
	}
	for i, b := range bs {
		assert.Equal(t, breaker.Closed, b.State(), "instance %d: 6 failures in the fleet, 2 on each", i)
	}
	require.NoError(t, bs[1].Do(ctx, succeed)) // resets bs[1]'s count only
	assert.ErrorIs(t, bs[0].Do(ctx, fail), errBoom)
	assert.Equal(t, breaker.Open, bs[0].State(), "bs[0]: its third consecutive failure trips it")
	for _, b := range bs[1:] {
		assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Open, b.State()) }, 5*time.Second, 10*time.Millisecond)
	}
	// bs[2] had two failures when bs[0] tripped it: its count restarts when it closes.
	require.NoError(t, bs[0].Reset(ctx))
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Closed, bs[2].State()) }, 5*time.Second, 10*time.Millisecond)
	assert.ErrorIs(t, bs[2].Do(ctx, fail), errBoom)
	assert.Equal(t, breaker.Closed, bs[2].State(), "one failure since the breaker closed")
}
