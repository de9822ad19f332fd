package breaker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/breaker"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestFaultCluster runs the breaker's fault checks on one 3-node cluster, with five
// instances spread over the members.
func TestFaultCluster(t *testing.T) {
	// Waits out cool-downs in parallel with the tests above; the only parallel test
	// that starts a cluster (the etcd test framework allows one at a time).
	t.Parallel()
	c := etcdtest.NewCluster(t, 3)
	onMember := func(i int) *clientv3.Client { return c.Client(i % 3) }

	// One instance trips the breaker; every other one is open within the watch latency.
	// Then, after the cool-down, one probe at a time in the whole fleet.
	t.Run("TripPropagatesAndOneProbe", func(t *testing.T) {
		ctx := etcdtest.Context(t, time.Minute)
		bs := newFleet(t, 5, onMember, breaker.WithFailureThreshold(3), breaker.WithCooldown(2*time.Second))
		for _, b := range bs {
			require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, breaker.Closed, b.State()) }, 10*time.Second, 10*time.Millisecond)
		}
		for range 3 {
			assert.ErrorIs(t, bs[4].Do(ctx, fail), errBoom)
		}
		require.Equal(t, breaker.Open, bs[4].State())
		for i, b := range bs[:4] {
			assert.EventuallyWithT(t, func(ct *assert.CollectT) {
				assert.Equal(ct, breaker.Open, b.State(), "instance %d", i)
			}, 2*time.Second, 5*time.Millisecond)
		}
		for _, b := range bs {
			require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, breaker.HalfOpen, b.State()) }, 15*time.Second, 10*time.Millisecond)
		}
		ran, most := probeRace(ctx, t, bs, errBoom)
		assert.Equal(t, int32(1), ran, "probes run by the fleet")
		assert.Equal(t, int32(1), most, "probes at once")
		for _, b := range bs {
			require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, breaker.HalfOpen, b.State()) }, 15*time.Second, 10*time.Millisecond)
		}
		ran, most = probeRace(ctx, t, bs, nil)
		assert.Equal(t, int32(1), ran)
		assert.Equal(t, int32(1), most)
		for _, b := range bs {
			assert.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, breaker.Closed, b.State()) }, 5*time.Second, 10*time.Millisecond)
		}
	})

	// An instance cut off from etcd still trips, for itself: its own failures open it
	// locally, for the cool-down, while the others (which did not see them) stay closed.
	t.Run("CutOffInstanceUsesLocalState", func(t *testing.T) {
		ctx := etcdtest.Context(t, time.Minute)
		bs := newFleet(t, 3, onMember, breaker.WithFailureThreshold(2), breaker.WithCooldown(2*time.Second))
		for _, b := range bs {
			require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, breaker.Closed, b.State()) }, 10*time.Second, 10*time.Millisecond)
		}
		c.Blackhole(2)
		defer c.Unblackhole(2)
		for range 2 {
			assert.ErrorIs(t, bs[2].Do(ctx, fail), errBoom)
		}
		assert.Equal(t, breaker.Open, bs[2].State(), "open locally")
		assert.ErrorIs(t, bs[2].Do(ctx, succeed), breaker.ErrOpen)
		assert.Equal(t, breaker.Closed, bs[0].State())
		assert.Equal(t, breaker.Closed, bs[1].State())
		// After the cool-down it probes for itself, etcd or not, and closes again.
		assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.NoError(ct, bs[2].Do(ctx, succeed))
		}, 15*time.Second, 50*time.Millisecond)
		assert.Equal(t, breaker.Closed, bs[2].State())
		assert.Equal(t, breaker.Closed, bs[0].State(), "a local trip stays local")
	})
}
