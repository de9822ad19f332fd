package monitor_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// History is written to the store by the checks themselves and read back from it, so a
// restarted Service answers with what the previous one saw.
func TestHistoryFromTheStoreOutlivesARestart(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	cli := etcdtest.Client(t)
	first, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, monitor.WithStore(st))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 30*time.Second)
	for range 3 {
		require.NoError(t, first.Refresh(ctx))
	}
	before, err := first.MetricsHistory(ctx, "local", monitor.HistoryQuery{})
	require.NoError(t, err)
	require.NoError(t, first.Close())

	second, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, monitor.WithStore(st))
	require.NoError(t, err)
	defer second.Close()
	srv := httptest.NewServer(second)
	defer srv.Close()

	var h monitor.HealthHistoryResponse
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/clusters/local/history", &h))
	require.Len(t, h.Checks, 3, "the previous Service's checks")
	for _, c := range h.Checks {
		assert.True(t, c.Healthy)
		assert.Equal(t, 1, c.Members)
		assert.NotZero(t, c.Leader)
	}
	var m monitor.MetricsHistoryResponse
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/clusters/local/metrics/history", &m))
	require.Len(t, m.Snapshots, 3)
	for i, sn := range m.Snapshots {
		assert.Len(t, sn.Members, 1)
		assert.True(t, before.Snapshots[i].Time.Equal(sn.Time))
		assert.Equal(t, before.Snapshots[i].Latency, sn.Latency, "the same numbers, in seconds")
		assert.Positive(t, sn.Summary.DBSizeMax, "the summary is computed from the members")
		assert.Equal(t, before.Snapshots[i].Summary, sn.Summary)
	}
	var w monitor.HealthHistoryResponse
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/clusters/local/history?step=1h", &w))
	require.NotEmpty(t, w.Checks)
	total := 0
	for _, c := range w.Checks {
		total += max(c.Samples, 1)
	}
	assert.Equal(t, 3, total, "a step stands for the checks in it: %+v", w.Checks)
	var newest monitor.HealthHistoryResponse
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/clusters/local/history?limit=1", &newest))
	assert.Equal(t, h.Checks[2:], newest.Checks)
}

// failingHistory is a store whose history fails.
type failingHistory struct {
	store.Store
	reads atomic.Int64
}

func (f *failingHistory) HealthChecks(context.Context, store.HistoryQuery) ([]store.HealthCheck, error) {
	f.reads.Add(1)
	return nil, errors.New("database on fire")
}

func (f *failingHistory) PutHealthChecks(context.Context, []store.HealthCheck) error {
	return errors.New("database on fire")
}

func TestHistoryFallsBackToMemoryWhenTheStoreFails(t *testing.T) {
	mem := store.NewMemory()
	defer mem.Close()
	st := &failingHistory{Store: mem}
	svc, url := refreshed(t, 2, monitor.WithStore(st))
	var h monitor.HealthHistoryResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/history", &h))
	assert.Len(t, h.Checks, 2, "from memory")
	assert.Positive(t, st.reads.Load(), "the store was asked first")
	_ = svc
}

// Only the replica the gate lets through writes history.
func TestHistoryGate(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	var active atomic.Bool
	_, _ = refreshed(t, 2, monitor.WithStore(st), monitor.WithHistoryGate(active.Load))
	ctx := etcdtest.Context(t, 5*time.Second)
	recs, err := st.HealthChecks(ctx, store.HistoryQuery{Cluster: "local"})
	require.NoError(t, err)
	assert.Empty(t, recs, "a standby writes no history")
	active.Store(true)
	svc, _ := refreshed(t, 1, monitor.WithStore(st), monitor.WithHistoryGate(active.Load))
	recs, err = st.HealthChecks(ctx, store.HistoryQuery{Cluster: "local"})
	require.NoError(t, err)
	assert.Len(t, recs, 1)
	_ = svc
}

func TestStoreStatsOnMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: etcdtest.Client(t)}}, monitor.WithRegistry(reg),
		monitor.WithStoreStats(func() monitor.StoreStats { return monitor.StoreStats{Errors: 3, Dropped: 2, Queued: 1} }))
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"etcd_monitor_store_errors_total": 3, "etcd_monitor_store_dropped_total": 2,
		"etcd_monitor_store_queue_length": 1}, storeCounts(t, reg))
	require.NoError(t, svc.Close())
	assert.Empty(t, storeCounts(t, reg), "unregistered by Close")
}

// storeCounts returns the etcd_monitor_store_* values reg exports.
func storeCounts(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "etcd_monitor_store_") {
			m := f.GetMetric()[0]
			out[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// History a store fails to write is counted on /metrics whatever the store, not only
// by stores that count their own losses.
func TestFailedHistoryWritesCounted(t *testing.T) {
	mem := store.NewMemory()
	defer mem.Close()
	reg := prometheus.NewPedanticRegistry()
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: etcdtest.Client(t)}}, monitor.WithRegistry(reg),
		monitor.WithStore(&failingHistory{Store: mem}))
	require.NoError(t, err)
	defer svc.Close()
	require.NoError(t, svc.Refresh(etcdtest.Context(t, 30*time.Second)))
	got := storeCounts(t, reg)
	assert.Equal(t, 1.0, got["etcd_monitor_store_errors_total"], "the health check write failed: %v", got)
	assert.Equal(t, 1.0, got["etcd_monitor_store_dropped_total"], "its one record is lost: %v", got)
	assert.Zero(t, got["etcd_monitor_store_queue_length"], "Refresh wrote what it queued")
}

// A history read from a store's rollups (no member data) still has the cluster's
// latency, throughput and summary, from the values written with each collection.
func TestRollupHistoryKeepsTheSummary(t *testing.T) {
	st := &rollupOnly{Store: store.NewMemory()}
	defer st.Close()
	_, url := refreshed(t, 2, monitor.WithStore(st))
	var m monitor.MetricsHistoryResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/metrics/history?step=1h", &m))
	require.NotEmpty(t, m.Snapshots)
	for _, sn := range m.Snapshots {
		assert.Empty(t, sn.Members)
		assert.Positive(t, sn.Summary.DBSizeMax)
		assert.Positive(t, sn.Latency.P99Seconds)
	}
}

// rollupOnly answers history as a store with only rollups left would: values, no data.
type rollupOnly struct{ store.Store }

func (r *rollupOnly) MetricSnapshots(ctx context.Context, q store.HistoryQuery) ([]store.MetricSnapshot, error) {
	recs, err := r.Store.MetricSnapshots(ctx, q)
	for i := range recs {
		recs[i].Data = nil
	}
	return recs, err
}

// The newest records, when memory holds as many, are answered from memory without a
// read of the store; more than memory holds, or a time range, are read from the store.
func TestNewestHistoryFromMemory(t *testing.T) {
	mem := store.NewMemory()
	defer mem.Close()
	st := &failingHistory{Store: mem}
	_, url := refreshed(t, 2, monitor.WithStore(st))
	var h monitor.HealthHistoryResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/history?limit=2", &h))
	assert.Len(t, h.Checks, 2)
	assert.Zero(t, st.reads.Load(), "the newest two are in memory")
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/history?limit=3", &h))
	assert.EqualValues(t, 1, st.reads.Load(), "three are more than memory holds")
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/history?limit=1&since=1h", &h))
	assert.EqualValues(t, 2, st.reads.Load(), "a time range is the store's")
}

// countingHistory counts the history writes that reach a store, and the most clusters
// one write of each kind held.
type countingHistory struct {
	store.Store
	healthWrites, metricWrites           atomic.Int64
	healthClustersMax, metricClustersMax atomic.Int64
}

func (c *countingHistory) PutHealthChecks(ctx context.Context, in []store.HealthCheck) error {
	c.healthWrites.Add(1)
	seen := map[string]bool{}
	for _, h := range in {
		seen[h.Cluster] = true
	}
	storeMax(&c.healthClustersMax, len(seen))
	return c.Store.PutHealthChecks(ctx, in)
}

func (c *countingHistory) PutMetricSnapshots(ctx context.Context, in []store.MetricSnapshot) error {
	c.metricWrites.Add(1)
	seen := map[string]bool{}
	for _, m := range in {
		seen[m.Cluster] = true
	}
	storeMax(&c.metricClustersMax, len(seen))
	return c.Store.PutMetricSnapshots(ctx, in)
}

func storeMax(v *atomic.Int64, n int) {
	for {
		old := v.Load()
		if int64(n) <= old || v.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

// The history of every cluster is written together, at most about once a second, not
// once per check; and what is queued when Run ends is written, not lost.
func TestHistoryWrittenTogether(t *testing.T) {
	mem := store.NewMemory()
	defer mem.Close()
	st := &countingHistory{Store: mem}
	cli := etcdtest.Client(t)
	names := []string{"a", "b", "c", "d"}
	var clusters []monitor.Cluster
	for _, n := range names {
		clusters = append(clusters, monitor.Cluster{Name: n, Client: cli})
	}
	svc, err := monitor.New(clusters, monitor.WithStore(st),
		monitor.WithHealthInterval(100*time.Millisecond), monitor.WithMetricsInterval(100*time.Millisecond))
	require.NoError(t, err)
	defer svc.Close()
	ctx, cancel := context.WithCancel(etcdtest.Context(t, time.Minute))
	ran := make(chan error, 1)
	start := time.Now()
	go func() { ran <- svc.Run(ctx) }()
	rctx := etcdtest.Context(t, 30*time.Second)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, n := range names {
			h, err := svc.HealthHistory(rctx, n, monitor.HistoryQuery{})
			if assert.NoError(c, err) {
				assert.GreaterOrEqual(c, len(h.Checks), 10, n)
			}
		}
	}, 30*time.Second, 50*time.Millisecond)
	cancel()
	require.NoError(t, <-ran)
	elapsed := time.Since(start)

	total := 0
	for _, n := range names {
		recs, err := mem.HealthChecks(rctx, store.HistoryQuery{Cluster: n, Limit: 1000})
		require.NoError(t, err)
		require.NotEmpty(t, recs)
		assert.Len(t, recs, int(svc.Checked(n)), "cluster %s: every check is in the store once Run has returned", n)
		total += len(recs)
		snaps, err := mem.MetricSnapshots(rctx, store.HistoryQuery{Cluster: n, Limit: 1000})
		require.NoError(t, err)
		assert.NotEmpty(t, snaps, n)
	}
	// A flush waits a second for the records that follow the first, and Run's end
	// writes what is left: at most one write of each kind a second, and one more. How
	// many checks a second holds depends on how fast the machine runs them, so the
	// count of checks per write is no measure; the clusters in one write are.
	most := int(elapsed/time.Second) + 1
	writes := int(st.healthWrites.Load())
	assert.LessOrEqual(t, writes, most, "%d checks of %d clusters in %d writes over %v: at most one write a second", total, len(names), writes, elapsed)
	assert.LessOrEqual(t, int(st.metricWrites.Load()), most, "metric snapshots over %v: at most one write a second", elapsed)
	assert.Less(t, writes, total, "not a write per check")
	assert.Greater(t, st.healthClustersMax.Load(), int64(1), "several clusters' checks in one write")
	assert.Greater(t, st.metricClustersMax.Load(), int64(1), "several clusters' snapshots in one write")
}

// A replica that becomes the history writer (a takeover, or the writer before it died)
// first writes what it has in memory newer than the store's newest record, so the time
// between the last writer's last record and its own first is no gap.
func TestHistoryWriterBackfillsFromMemory(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	cli := etcdtest.Client(t)
	var aOpen, bOpen atomic.Bool
	aOpen.Store(true)
	replica := func(gate *atomic.Bool) *monitor.Service {
		svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, monitor.WithStore(st), monitor.WithHistoryGate(gate.Load))
		require.NoError(t, err)
		t.Cleanup(func() { svc.Close() })
		return svc
	}
	a, b := replica(&aOpen), replica(&bOpen)
	ctx := etcdtest.Context(t, time.Minute)
	for range 2 {
		require.NoError(t, a.Refresh(ctx))
	}
	for range 3 {
		require.NoError(t, b.Refresh(ctx)) // a standby: in its memory only
	}
	count := func() (health, snaps int) {
		hs, err := st.HealthChecks(ctx, store.HistoryQuery{Cluster: "local", Limit: 1000})
		require.NoError(t, err)
		ms, err := st.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "local", Limit: 1000})
		require.NoError(t, err)
		return len(hs), len(ms)
	}
	h, m := count()
	require.Equal(t, 2, h, "only the writer's checks")
	require.Equal(t, 2, m)

	aOpen.Store(false) // the writer is gone; b takes over
	bOpen.Store(true)
	require.NoError(t, b.Refresh(ctx))
	h, m = count()
	assert.Equal(t, 2+3+1, h, "b's checks since a's last one, then its own")
	assert.Equal(t, 2+3+1, m, "the same for snapshots")

	require.NoError(t, b.Refresh(ctx))
	h, _ = count()
	assert.Equal(t, 7, h, "written once: no backfill while the gate stays open")
}
