package discovery

import (
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func count(m interface {
	Range(func(k, v any) bool)
}) int {
	n := 0
	m.Range(func(_, _ any) bool { n++; return true })
	return n
}

// Looking up, picking from and marking failed services that do not exist stores
// nothing, in the Resolver or the Balancer.
func TestUnknownServicesCostNothing(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	_, err := cli.Put(ctx, p+"real/a", `{"address":"10.0.0.1","port":80}`)
	require.NoError(t, err)
	r, err := NewResolver(cli, p)
	require.NoError(t, err)
	defer r.Close()
	b, err := NewBalancer(r, RoundRobin)
	require.NoError(t, err)
	defer b.Close()
	for i := range 1000 {
		name := fmt.Sprint("nope-", i)
		_, _ = r.Discover(name) // before and after the listing
		_, _ = b.Pick(name)
		b.MarkFailed(name, "x")
		_ = b.InFlight(name, "x")
	}
	require.NoError(t, r.WaitReady(ctx))
	for i := range 1000 {
		name := fmt.Sprint("nope-", i)
		_, _ = r.Discover(name)
		_, _ = b.Pick(name)
		b.MarkFailed(name, "x")
	}
	sel, err := b.Pick("real")
	require.NoError(t, err)
	sel.Report(nil)
	assert.Equal(t, 1, count(&r.snaps), "only the service with an instance")
	assert.Equal(t, 1, count(&b.pools), "only the service picked from")
	r.mu.Lock()
	assert.Len(t, r.entries, 1)
	r.mu.Unlock()

	// A service whose last instance leaves is forgotten by the Resolver.
	_, err = cli.Delete(ctx, p+"real/a")
	require.NoError(t, err)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, count(&r.snaps))
		r.mu.Lock()
		assert.Empty(c, r.entries)
		r.mu.Unlock()
	}, 2*time.Second, 10*time.Millisecond)
}

// A pool nobody picks from is forgotten after the idle timeout, unless a pick is in
// flight.
func TestIdlePoolsForgotten(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	_, err := cli.Put(ctx, p+"svc/a", `{"address":"10.0.0.1","port":80}`)
	require.NoError(t, err)
	r, err := NewResolver(cli, p)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.WaitReady(ctx))
	const idle = 200 * time.Millisecond
	b, err := NewBalancer(r, RoundRobin, WithIdleTimeout(idle))
	require.NoError(t, err)
	defer b.Close()

	held, err := b.Pick("svc")
	require.NoError(t, err)
	// Three sweeps later the pool would be idle, but a pick is in flight.
	start := b.tick.Load()
	// Four sweeps take 400ms; a ticker drops the ticks of a sweeper scheduled late, so
	// the deadline leaves room for a loaded machine.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, b.tick.Load(), start+4, "sweeps")
	}, 25*idle, idle/10)
	assert.Equal(t, 1, count(&b.pools), "kept while a pick is in flight")
	held.Report(nil)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, count(&b.pools))
	}, 25*idle, idle/10, "forgotten after idle")
}

// Cool-downs are measured on the Balancer's monotonic clock only.
func TestCooldownOnMonotonicClock(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	_, err := cli.Put(ctx, p+"svc/a", `{"address":"10.0.0.1","port":80}`)
	require.NoError(t, err)
	r, err := NewResolver(cli, p)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.WaitReady(ctx))
	b, err := NewBalancer(r, RoundRobin, WithCooldown(time.Minute))
	require.NoError(t, err)
	defer b.Close()
	var clock atomic.Int64
	clock.Store(int64(time.Hour))
	b.now = clock.Load

	b.MarkFailed("svc", "a")
	_, err = b.Pick("svc")
	assert.ErrorIs(t, err, ErrNoInstance)
	clock.Add(int64(59 * time.Second))
	_, err = b.Pick("svc")
	assert.ErrorIs(t, err, ErrNoInstance, "still cooling down")
	clock.Add(int64(time.Second))
	sel, err := b.Pick("svc")
	assert.NoError(t, err, "back after exactly the cool-down")
	sel.Report(nil)

	// The default clock is monotonic: it does not go back, and it is not the wall clock.
	a := monoNow()
	assert.GreaterOrEqual(t, monoNow(), a)
	assert.Less(t, monoNow(), time.Now().UnixNano()/2, "not the Unix epoch")
}

// A cool-down too long to add to the clock does not wrap around to "healthy".
func TestHugeCooldown(t *testing.T) {
	var s state
	s.fail(int64(time.Hour), time.Duration(math.MaxInt64))
	assert.False(t, s.healthy(func() int64 { return int64(2 * time.Hour) }))
}
