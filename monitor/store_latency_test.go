package monitor_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// The latency history from the store (which decodes only each snapshot's latency) is
// the latency of the metrics history (which decodes whole snapshots), for raw records
// and for a rollup's values alike, and it outlives the Service that wrote it.
func TestStoreLatencyHistoryMatchesMetricsHistory(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	cli := etcdtest.Client(t)
	first, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, monitor.WithStore(st))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 30*time.Second)
	for range 3 {
		require.NoError(t, first.Refresh(ctx))
	}
	require.NoError(t, first.Close())
	// A record as a rollup reads: values, no snapshot.
	require.NoError(t, st.PutMetricSnapshots(ctx, []store.MetricSnapshot{{Time: time.Now().Add(-time.Hour), Cluster: "local", Samples: 6,
		Values: map[string]float64{"latency_p50_seconds": 0.001, "latency_p95_seconds": 0.002, "latency_p99_seconds": 0.003, "latency_max_seconds": 0.004}}}))

	second, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, monitor.WithStore(st))
	require.NoError(t, err)
	defer second.Close()
	require.NoError(t, second.Refresh(ctx))
	m, err := second.MetricsHistory(ctx, "local", monitor.HistoryQuery{})
	require.NoError(t, err)
	l, err := second.LatencyHistory(ctx, "local", monitor.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, m.Snapshots, 5, "the rollup, the first Service's three, the second's one")
	require.Len(t, l.History, len(m.Snapshots))
	for i, sn := range m.Snapshots {
		assert.True(t, sn.Time.Equal(l.History[i].Time), "point %d", i)
		assert.Equal(t, sn.Latency, l.History[i].Latency, "point %d", i)
	}
	assert.Equal(t, 0.003, l.History[0].Latency.P99Seconds, "from the values")
	assert.Equal(t, 0.004, l.History[0].Latency.MaxSeconds)
	assert.Positive(t, l.History[1].Latency.Samples, "from the stored snapshot")
}
