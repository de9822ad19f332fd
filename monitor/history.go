package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// History in the store: every health check and metric collection is queued from the
// loop that made it (never from a request) and written with those of every other
// cluster once a second, in one write per kind, so that a store that commits with an
// fsync (bbolt) does one a second whatever the number of clusters. The history endpoints
// read it back with since, until and step, so history outlives a restart and reaches
// back as far as the store keeps it (PostgreSQL: rollups for a year); the newest
// records are answered from memory, which has them first. A store that fails leaves the
// API answering from memory.

// historyWriteTimeout bounds one history write, so a hung store holds the writer by at
// most this. PostgreSQL's writes are queued and return at once; bbolt's are local.
const historyWriteTimeout = 2 * time.Second

// historyFlushEvery is how long a history record waits to be written with others, and
// maxQueuedHistory how many of each kind may wait (a store slower than that loses the
// oldest, counted as failures).
const (
	historyFlushEvery = time.Second
	maxQueuedHistory  = 10000
)

// The numbers each record carries, for charts and rollups.
const (
	valMembers    = "members"
	valReachable  = "members_reachable"
	valQuorum     = "has_quorum"
	valP50        = "latency_p50_seconds"
	valP95        = "latency_p95_seconds"
	valP99        = "latency_p99_seconds"
	valMax        = "latency_max_seconds"
	valThroughput = "requests_per_second"
	valPuts       = "puts_per_second"
	valRanges     = "ranges_per_second"
	valDBSize     = "db_size_bytes_max"
	valFsyncP99   = "wal_fsync_p99_seconds_max"
)

// recorder writes a Service's history to its store, batched (see historyFlushEvery).
// Its methods do nothing on a nil recorder.
type recorder struct {
	st   store.Store
	gate func() bool // nil: always write
	log  *zap.Logger
	// errs counts failed writes, dropped the records lost (exported with the store's
	// own counts, see storeCollector).
	errs, dropped atomic.Uint64

	mu      sync.Mutex
	open    map[string]bool // whether the gate was open at the last record, by cluster and kind
	health  []store.HealthCheck
	metrics []store.MetricSnapshot
	timer   *time.Timer // the flush due; nil when nothing waits for one
	closed  bool
	timers  sync.WaitGroup // flushes started by timers
	writing sync.Mutex     // one flush at a time, so records reach the store in order
}

func (r *recorder) enabled() bool { return r != nil && (r.gate == nil || r.gate()) }

// opens checks the gate for a record of cluster (kind "health" or "metrics") and reports
// whether it is open, and whether it opened since the cluster's last record of the kind
// (or this is its first): then the records in memory that the store lacks are written
// too, so that the time between the last writer's last record (a replica that died, or
// handed over) and this one's first is no gap.
func (r *recorder) opens(cluster, kind string) (open, opened bool) {
	if r == nil {
		return false, false
	}
	open = r.enabled()
	key := cluster + "\x00" + kind
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil {
		r.open = map[string]bool{}
	}
	opened = open && !r.open[key]
	r.open[key] = open
	return open, opened
}

// newest returns the time of the newest record of cluster the store has, or false when it
// could not tell.
func (r *recorder) newest(cluster, kind string) (time.Time, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), historyWriteTimeout)
	defer cancel()
	q := store.HistoryQuery{Cluster: cluster, Limit: 1}
	var t time.Time
	var err error
	if kind == "health" {
		var recs []store.HealthCheck
		if recs, err = r.st.HealthChecks(ctx, q); err == nil && len(recs) > 0 {
			t = recs[len(recs)-1].Time
		}
	} else {
		var recs []store.MetricSnapshot
		if recs, err = r.st.MetricSnapshots(ctx, q); err == nil && len(recs) > 0 {
			t = recs[len(recs)-1].Time
		}
	}
	if err != nil {
		r.log.Warn("history in memory not written: the store's newest record unknown", zap.String("cluster", cluster), zap.Error(err))
		return time.Time{}, false
	}
	return t, true
}

// failed counts a write of n records that failed, or a record refused or dropped (n 1).
func (r *recorder) failed(what string, n int, err error) {
	r.dropped.Add(uint64(n))
	if errs := r.errs.Add(1); errs == 1 || errs%100 == 0 { // the first failure, then one a hundred
		r.log.Warn("history not stored", zap.String("what", what), zap.Int("records", n), zap.Error(err),
			zap.Uint64("failures", errs), zap.Uint64("records_lost", r.dropped.Load()))
	}
}

// stats returns the recorder's counts: failed writes, records lost, records queued.
func (r *recorder) stats() StoreStats {
	if r == nil {
		return StoreStats{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return StoreStats{Errors: r.errs.Load(), Dropped: r.dropped.Load(), Queued: len(r.health) + len(r.metrics)}
}

// queue adds a record to the next flush, scheduling one unless it is due already; after
// close it writes at once.
func (r *recorder) queue(add func()) {
	r.mu.Lock()
	if r.closed {
		add()
		r.mu.Unlock()
		r.flush()
		return
	}
	add()
	if r.timer == nil {
		r.timers.Add(1)
		r.timer = time.AfterFunc(historyFlushEvery, func() {
			defer r.timers.Done()
			r.flush()
		})
	}
	r.mu.Unlock()
}

// flush writes what is queued.
func (r *recorder) flush() {
	if r == nil {
		return
	}
	r.writing.Lock()
	defer r.writing.Unlock()
	r.mu.Lock()
	hs, ms := r.health, r.metrics
	r.health, r.metrics = nil, nil
	if r.timer != nil && r.timer.Stop() {
		r.timers.Done() // it will not run
	}
	r.timer = nil
	r.mu.Unlock()
	if len(hs) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), historyWriteTimeout)
		if err := r.st.PutHealthChecks(ctx, hs); err != nil {
			r.failed("health checks", len(hs), err)
		}
		cancel()
	}
	if len(ms) > 0 { // a timeout of its own: a slow write of the checks does not cost it
		ctx, cancel := context.WithTimeout(context.Background(), historyWriteTimeout)
		if err := r.st.PutMetricSnapshots(ctx, ms); err != nil {
			r.failed("metric snapshots", len(ms), err)
		}
		cancel()
	}
}

// close writes what is queued and waits for flushes under way; records queued after it
// are written at once.
func (r *recorder) close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.flush()
	r.timers.Wait()
}

// keep appends v to q, dropping (and counting) the oldest beyond maxQueuedHistory.
func keep[T any](r *recorder, what string, q []T, v T) []T {
	if len(q) >= maxQueuedHistory {
		r.failed(what, 1, errors.New("queue full: the store is slower than the checks"))
		q = q[1:]
	}
	return append(q, v)
}

// healthCheck queues a health check of cluster; memory returns the cluster's checks in
// memory, oldest first, for when the gate has just opened.
func (r *recorder) healthCheck(cluster string, sum HealthSummary, memory func() []HealthSummary) {
	open, opened := r.opens(cluster, "health")
	if !open {
		return
	}
	if opened {
		older := slices.DeleteFunc(memory(), func(h HealthSummary) bool { return !h.Time.Before(sum.Time) })
		if len(older) > 0 { // else (a cluster's first record) no need to ask the store
			if since, ok := r.newest(cluster, "health"); ok {
				for _, h := range older {
					if h.Time.After(since) {
						r.healthRecord(cluster, h)
					}
				}
			}
		}
	}
	r.healthRecord(cluster, sum)
}

func (r *recorder) healthRecord(cluster string, sum HealthSummary) {
	data, err := json.Marshal(sum)
	if err != nil {
		r.failed("health checks", 1, err)
		return
	}
	rec := store.HealthCheck{Time: sum.Time, Cluster: cluster, Healthy: sum.Healthy, Samples: 1, Data: data,
		Values: map[string]float64{valMembers: float64(sum.Members), valReachable: float64(sum.Reachable), valQuorum: one(sum.HasQuorum)}}
	if err := rec.Validate(); err != nil { // alone, rather than failing the write it would join
		r.failed("health checks", 1, err)
		return
	}
	r.queue(func() { r.health = keep(r, "health checks", r.health, rec) })
}

// metricSnapshot queues a metric snapshot of cluster; memory returns the cluster's
// snapshots in memory, oldest first, for when the gate has just opened.
func (r *recorder) metricSnapshot(cluster string, snap *metrics.Snapshot, memory func() []*metrics.Snapshot) {
	if snap == nil {
		return
	}
	open, opened := r.opens(cluster, "metrics")
	if !open {
		return
	}
	if opened {
		older := slices.DeleteFunc(memory(), func(m *metrics.Snapshot) bool { return !m.Time.Before(snap.Time) })
		if len(older) > 0 {
			if since, ok := r.newest(cluster, "metrics"); ok {
				for _, m := range older {
					if m.Time.After(since) {
						r.metricRecord(cluster, m)
					}
				}
			}
		}
	}
	r.metricRecord(cluster, snap)
}

func (r *recorder) metricRecord(cluster string, snap *metrics.Snapshot) {
	data, err := json.Marshal(snap)
	if err != nil {
		r.failed("metric snapshots", 1, err)
		return
	}
	v := map[string]float64{valP50: snap.Latency.P50.Seconds(), valP95: snap.Latency.P95.Seconds(), valP99: snap.Latency.P99.Seconds(),
		valMax: snap.Latency.Max.Seconds(), valThroughput: snap.Throughput}
	for _, m := range snap.Members {
		v[valPuts] += m.Throughput.Puts
		v[valRanges] += m.Throughput.Ranges
		v[valDBSize] = max(v[valDBSize], float64(m.DB.Size))
		v[valFsyncP99] = max(v[valFsyncP99], m.WALFsync.P99.Seconds())
	}
	rec := store.MetricSnapshot{Time: snap.Time, Cluster: cluster, Samples: 1, Values: store.FiniteValues(v), Data: data}
	if err := rec.Validate(); err != nil {
		r.failed("metric snapshots", 1, err)
		return
	}
	r.queue(func() { r.metrics = keep(r, "metric snapshots", r.metrics, rec) })
}

// StoreStats are a store's own counts, exported as etcd_monitor_store_errors_total,
// etcd_monitor_store_dropped_total and etcd_monitor_store_queue_length (see
// WithStoreStats), each with the Service's own: history writes that failed, the records
// they lost, and the records waiting for the next write.
type StoreStats struct {
	// Errors counts failed store operations, Dropped history records given up.
	Errors, Dropped uint64
	// Queued is the number of records waiting to be written.
	Queued int
}

// storeCollector exports StoreStats at scrape time: the store's (stats, nil without
// WithStoreStats) added to the recorder's.
type storeCollector struct {
	stats func() StoreStats
	rec   *recorder
}

var (
	descStoreErrors  = prometheus.NewDesc("etcd_monitor_store_errors_total", "Store operations that failed (a history write, PostgreSQL unreachable, a record refused, ...).", nil, nil)
	descStoreDropped = prometheus.NewDesc("etcd_monitor_store_dropped_total", "History records the store gave up (queue full, store closed, data refused).", nil, nil)
	descStoreQueue   = prometheus.NewDesc("etcd_monitor_store_queue_length", "History records waiting to be written to the store.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStoreErrors
	ch <- descStoreDropped
	ch <- descStoreQueue
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	var st StoreStats
	if c.stats != nil {
		st = c.stats()
	}
	own := c.rec.stats()
	st.Errors += own.Errors
	st.Dropped += own.Dropped
	st.Queued += own.Queued
	ch <- prometheus.MustNewConstMetric(descStoreErrors, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(descStoreDropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(descStoreQueue, prometheus.GaugeValue, float64(st.Queued))
}

// historyReader reads health and metric history.
type historyReader interface {
	healthHistory(ctx context.Context, cluster string, q HistoryQuery) ([]HealthSummary, error)
	metricsHistory(ctx context.Context, cluster string, q HistoryQuery) ([]point, error)
}

// historyStore returns the store's history when the Service has a store.
func (s *Service) historyStore() (historyReader, bool) {
	if s.opts.store == nil {
		return nil, false
	}
	return storeHistory{s.opts.store}, true
}

type storeHistory struct{ st store.Store }

func storeQuery(cluster string, q HistoryQuery) store.HistoryQuery {
	return store.HistoryQuery{Cluster: cluster, Since: q.Since, Until: q.Until, Step: q.Step, Limit: q.Limit}
}

func (h storeHistory) healthHistory(ctx context.Context, cluster string, q HistoryQuery) ([]HealthSummary, error) {
	recs, err := h.st.HealthChecks(ctx, storeQuery(cluster, q))
	if err != nil {
		return nil, err
	}
	out := make([]HealthSummary, 0, len(recs))
	for _, r := range recs {
		var sum HealthSummary
		if len(r.Data) == 0 || json.Unmarshal(r.Data, &sum) != nil {
			// A rollup: the step's means.
			sum = HealthSummary{Healthy: r.Healthy, HasQuorum: r.Values[valQuorum] >= 1,
				Members: int(math.Round(r.Values[valMembers])), Reachable: int(math.Round(r.Values[valReachable]))}
		}
		sum.Time = r.Time
		if r.Samples > 1 {
			sum.Samples = r.Samples
		}
		out = append(out, sum)
	}
	return out, nil
}

func (h storeHistory) metricsHistory(ctx context.Context, cluster string, q HistoryQuery) ([]point, error) {
	recs, err := h.st.MetricSnapshots(ctx, storeQuery(cluster, q))
	if err != nil {
		return nil, err
	}
	out := make([]point, 0, len(recs))
	for _, r := range recs {
		if r.Member != "" {
			continue // per-member records are not ours
		}
		p := point{snap: &metrics.Snapshot{}}
		if len(r.Data) == 0 || json.Unmarshal(r.Data, p.snap) != nil {
			// A rollup: the cluster's means, no members.
			d := func(name string) time.Duration { return time.Duration(r.Values[name] * float64(time.Second)) }
			p.snap = &metrics.Snapshot{Members: []metrics.MemberMetrics{}, Throughput: r.Values[valThroughput],
				Latency: metrics.Latency{Samples: r.Samples, P50: d(valP50), P95: d(valP95), P99: d(valP99), Max: d(valMax)}}
			p.summary = &ClusterSummary{PutsPerSecond: r.Values[valPuts], RangesPerSecond: r.Values[valRanges],
				DBSizeMax: r.Values[valDBSize], WALFsyncP99SecondsMax: r.Values[valFsyncP99]}
		}
		p.snap.Time = r.Time
		out = append(out, p)
	}
	return out, nil
}

func one(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
