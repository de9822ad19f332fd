package alert

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// When snapshots come so often that the history of whole snapshots reaches its cap
// before their age leaves it, the snapshots the cap drops still leave their counters
// to the rules over longer windows: the leader changes of the whole window are counted.
func TestCountersKeptPastTheSnapshotCap(t *testing.T) {
	th := DefaultThresholds()
	th.HistogramWindow, th.LeaderChangesWindow = 60*time.Minute, 2*time.Hour
	m, err := New(WithThresholds(th))
	require.NoError(t, err)
	defer m.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	changes := 0.0
	var last time.Time
	for i := range 100 * 60 { // 100 minutes, a snapshot a second
		if i == 60 { // one leader change a minute in
			changes++
		}
		last = t0.Add(time.Duration(i) * time.Second)
		m.remember("c", &metrics.Snapshot{Time: last, Members: []metrics.MemberMetrics{{ID: 1, Scraped: true,
			Raft: metrics.Raft{LeaderChanges: changes}}}})
	}
	require.Len(t, m.snapshots["c"], maxSnapshots, "the cap is reached")
	in := &Input{History: m.snapshots["c"], counters: m.counters["c"]}
	n, ok := in.counterIncrease(1, th.LeaderChangesWindow, leaderChanges)
	require.True(t, ok)
	assert.Equal(t, 1.0, n, "leader changes within %v of %v", th.LeaderChangesWindow, last.Sub(t0))
}

// A window quantile is a duration within range whatever bounds the buckets have: the
// parser leaves absurd histograms out, but a rule may be given any.
func TestWindowQuantileClamped(t *testing.T) {
	h := func(m *metrics.MemberMetrics) metrics.Histogram { return m.WALFsync }
	for _, upper := range []float64{1e300, -1, -1e300} {
		ss := make([]sample, 2)
		for i := range ss {
			ss[i] = sample{time.Unix(int64(i), 0), &metrics.MemberMetrics{WALFsync: metrics.Histogram{Total: uint64(10 * i),
				Buckets: []metrics.Bucket{{UpperBound: upper, Count: uint64(10 * i)}}}}}
		}
		d, ok := windowQuantile(ss, 0.99, h)
		require.True(t, ok, "bound %g", upper)
		assert.GreaterOrEqual(t, d, time.Duration(0), "bound %g", upper)
		if upper > 0 {
			assert.Equal(t, time.Duration(math.MaxInt64), d, "bound %g", upper)
		}
	}
}
