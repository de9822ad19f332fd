package breaker_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/breaker"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

var errBoom = errors.New("boom")

func fail(context.Context) error    { return errBoom }
func succeed(context.Context) error { return nil }

func TestRejectsBadInput(t *testing.T) {
	cli := etcdtest.Client(t)
	_, err := breaker.New(nil, "/b")
	assert.ErrorIs(t, err, breaker.ErrInvalidArgument)
	_, err = breaker.New(cli, "")
	assert.ErrorIs(t, err, breaker.ErrInvalidArgument)
	for name, opt := range map[string]breaker.Option{
		"nil":       nil,
		"threshold": breaker.WithFailureThreshold(0),
		"cooldown":  breaker.WithCooldown(100 * time.Millisecond),
		"probe":     breaker.WithProbeTimeout(0),
		// Past etcd's largest lease TTL (about 285 years) no trip could be written, and
		// the staleness bound (twice the cool-down and more) overflowed a Duration.
		"huge cooldown": breaker.WithCooldown(math.MaxInt64),
		"huge probe":    breaker.WithProbeTimeout(math.MaxInt64),
		"isFailure":     breaker.WithIsFailure(nil),
		"logger":        breaker.WithLogger(nil),
	} {
		_, err := breaker.New(cli, "/b", opt)
		assert.ErrorIs(t, err, breaker.ErrInvalidArgument, name)
	}
}

// newFleet returns n breakers on one prefix, each with a client of its own.
func newFleet(t *testing.T, n int, clients func(i int) *clientv3.Client, opts ...breaker.Option) []*breaker.Breaker {
	prefix := etcdtest.Prefix(t)
	var bs []*breaker.Breaker
	for i := range n {
		b, err := breaker.New(clients(i), prefix, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		bs = append(bs, b)
	}
	return bs
}

func sharedClients(t *testing.T) func(int) *clientv3.Client {
	return func(int) *clientv3.Client { return etcdtest.Client(t) }
}

func TestTripOpensEveryInstance(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	bs := newFleet(t, 3, sharedClients(t), breaker.WithFailureThreshold(3), breaker.WithCooldown(30*time.Second))
	for _, b := range bs {
		require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Closed, b.State()) }, 5*time.Second, 10*time.Millisecond)
	}
	for range 2 {
		assert.ErrorIs(t, bs[0].Do(ctx, fail), errBoom)
	}
	require.NoError(t, bs[0].Do(ctx, succeed), "a success resets the count")
	for range 3 {
		assert.ErrorIs(t, bs[0].Do(ctx, fail), errBoom)
	}
	assert.Equal(t, breaker.Open, bs[0].State())
	for _, b := range bs[1:] {
		assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Open, b.State()) }, 5*time.Second, 10*time.Millisecond)
		called := false
		assert.ErrorIs(t, b.Do(ctx, func(context.Context) error { called = true; return nil }), breaker.ErrOpen)
		assert.False(t, called, "an open breaker calls nothing")
	}
	require.NoError(t, bs[2].Reset(ctx))
	for _, b := range bs {
		assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Closed, b.State()) }, 5*time.Second, 10*time.Millisecond)
	}
}

// probeRace has every instance call Do at once with a probe that blocks until released,
// and returns how many ran.
func probeRace(ctx context.Context, t *testing.T, bs []*breaker.Breaker, result error) (ran int32, maxConcurrent int32) {
	var running, most, count, rejected atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(len(bs))
	for _, b := range bs {
		wg.Go(func() {
			started.Done()
			err := b.Do(ctx, func(context.Context) error {
				n := running.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				count.Add(1)
				<-release
				running.Add(-1)
				return result
			})
			if errors.Is(err, breaker.ErrOpen) {
				rejected.Add(1)
			}
		})
	}
	started.Wait()
	// Let the losers get their ErrOpen, then release the probe: no call is left that
	// could probe once the probe's outcome is written.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, int32(1), count.Load())
		assert.Equal(c, int32(len(bs)-1), rejected.Load())
	}, 10*time.Second, 5*time.Millisecond)
	close(release)
	wg.Wait()
	return count.Load(), most.Load()
}

func TestOneHalfOpenProbe(t *testing.T) {
	t.Parallel() // waits out cool-downs; its own prefix
	ctx := etcdtest.Context(t, 30*time.Second)
	bs := newFleet(t, 4, sharedClients(t), breaker.WithFailureThreshold(1), breaker.WithCooldown(time.Second))
	require.NoError(t, bs[0].Trip(ctx))
	for _, b := range bs {
		require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.HalfOpen, b.State()) }, 10*time.Second, 10*time.Millisecond)
	}
	// A failed probe opens it again for another cool-down.
	ran, most := probeRace(ctx, t, bs, errBoom)
	assert.Equal(t, int32(1), ran)
	assert.Equal(t, int32(1), most)
	for _, b := range bs {
		assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Open, b.State()) }, 5*time.Second, 10*time.Millisecond)
	}
	for _, b := range bs {
		require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.HalfOpen, b.State()) }, 10*time.Second, 10*time.Millisecond)
	}
	// A successful one closes it for all.
	ran, most = probeRace(ctx, t, bs, nil)
	assert.Equal(t, int32(1), ran)
	assert.Equal(t, int32(1), most)
	for _, b := range bs {
		assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.Closed, b.State()) }, 5*time.Second, 10*time.Millisecond)
	}
}

func TestCrashedProberFreesTheClaim(t *testing.T) {
	t.Parallel() // waits out cool-downs; its own prefix
	ctx := etcdtest.Context(t, 30*time.Second)
	prefix := etcdtest.Prefix(t)
	opts := []breaker.Option{breaker.WithCooldown(time.Second), breaker.WithProbeTimeout(time.Second)}
	crashing, err := etcdtest.NewClient()
	require.NoError(t, err)
	prober, err := breaker.New(crashing, prefix, opts...)
	require.NoError(t, err)
	other, err := breaker.New(etcdtest.Client(t), prefix, opts...)
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, other.Trip(ctx))
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.HalfOpen, prober.State()) }, 10*time.Second, 10*time.Millisecond)

	inProbe := make(chan struct{})
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		called := false
		for !called && ctx.Err() == nil {
			// Until etcd's cool-down lease (at least etcd's minimum TTL) is gone, the
			// claim fails with ErrOpen.
			_ = prober.Do(ctx, func(pctx context.Context) error {
				called = true
				close(inProbe)
				crashing.Close() // the instance dies mid-probe, its claim still in etcd
				<-pctx.Done()
				return pctx.Err()
			})
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}()
	<-inProbe
	assert.ErrorIs(t, other.Do(ctx, succeed), breaker.ErrOpen, "the probe is taken")
	// Once the dead prober's claim expires, another instance probes.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NoError(c, other.Do(ctx, succeed))
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, breaker.Closed, other.State())
	<-probeDone
	require.NoError(t, prober.Close())
}

func TestCloseIsIdempotent(t *testing.T) {
	b, err := breaker.New(etcdtest.Client(t), etcdtest.Prefix(t))
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	assert.ErrorIs(t, b.Do(context.Background(), succeed), breaker.ErrClosed)
}

// A Trip made while a half-open probe runs opens the breaker for a cool-down: the
// probe's success, recorded after it, does not close the breaker again.
func TestTripDuringProbeWins(t *testing.T) {
	t.Parallel() // waits out cool-downs; its own prefix
	ctx := etcdtest.Context(t, 30*time.Second)
	bs := newFleet(t, 2, sharedClients(t), breaker.WithCooldown(time.Second), breaker.WithProbeTimeout(10*time.Second))
	require.NoError(t, bs[0].Trip(ctx))
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, breaker.HalfOpen, bs[0].State()) }, 10*time.Second, 10*time.Millisecond)
	err := bs[0].Do(ctx, func(context.Context) error {
		return bs[1].Trip(ctx) // an operator, or another instance, trips it meanwhile
	})
	require.NoError(t, err)
	// bs[0] took the outcome of its own transaction; the cool-down may be over already.
	assert.NotEqual(t, breaker.Closed, bs[0].State(), "the trip made during the probe holds")
}
