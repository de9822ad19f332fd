package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Bucket bounds of the histograms a Collector records itself, in seconds. Probes are
// linearizable reads: well under a millisecond on loopback, a few milliseconds on a LAN,
// tens across zones, and seconds only when a member struggles.
var (
	probeBuckets      = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	scrapeBuckets     = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	collectionBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

// exporter exports what a Collector measures itself (probe and scrape histograms and
// counters, recorded as they happen) and what its members' /metrics said at the latest
// collection (as constant metrics of the right type: gauges, counters and etcd's own
// histograms with their buckets), so that Prometheus can aggregate them across members
// and clusters. Series are keyed by the member's ID in hex (label "member"); names may
// be empty or repeated.
type exporter struct {
	c *Collector

	probe        *prometheus.HistogramVec
	probeErrors  *prometheus.CounterVec
	scrape       *prometheus.HistogramVec
	scrapeErrors *prometheus.CounterVec
	scrapeSize   *prometheus.GaugeVec
	collection   prometheus.Histogram

	up, hasLeader, isLeader, leaderChanges          *prometheus.Desc
	committed, applied, pending, failed             *prometheus.Desc
	dbSize, dbInUse, dbQuota                        *prometheus.Desc
	requests, operations                            *prometheus.Desc
	fsync, commit, peerRTT                          *prometheus.Desc
	watchers, watchStreams, grpcStreams             *prometheus.Desc
	cpu, rss, fds, maxFDs, diskAvailable, diskTotal *prometheus.Desc
}

func newExporter(c *Collector) *exporter {
	m := []string{"member"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("etcd_monitor_member_"+name, help, append(m, labels...), nil)
	}
	return &exporter{
		c: c,
		probe: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "etcd_monitor_probe_duration_seconds",
			Help: "Latency of the linearizable reads the monitor sends through each member, one observation per successful probe.",
			// Classic buckets for every Prometheus, native ones for those that scrape them.
			Buckets:                         probeBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, m),
		probeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcd_monitor_probe_errors_total",
			Help: "Linearizable read probes through the member that failed.",
		}, m),
		scrape: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "etcd_monitor_scrape_duration_seconds",
			Help:    "Time to fetch and parse the member's /metrics, failures included.",
			Buckets: scrapeBuckets,
		}, m),
		scrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcd_monitor_scrape_errors_total",
			Help: "Scrapes of the member's /metrics that failed (unreachable, not etcd, malformed, or over the size limit).",
		}, m),
		scrapeSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "etcd_monitor_scrape_size_bytes",
			Help: "Size of the member's latest /metrics response, as far as it was read.",
		}, m),
		collection: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "etcd_monitor_metric_collection_duration_seconds",
			Help:    "Time of a whole metric collection of the cluster (every member probed and scraped).",
			Buckets: collectionBuckets,
		}),

		up:            d("up", "1 when the member answered both the probe and the scrape of the latest collection."),
		hasLeader:     d("has_leader", "1 when the member sees a leader (etcd_server_has_leader)."),
		isLeader:      d("is_leader", "1 when the member is the leader (etcd_server_is_leader)."),
		leaderChanges: d("leader_changes_seen_total", "Leader changes the member has seen since it started (etcd_server_leader_changes_seen_total)."),
		committed:     d("proposals_committed", "Committed raft index of the member (etcd_server_proposals_committed_total, a gauge)."),
		applied:       d("proposals_applied", "Applied raft index of the member (etcd_server_proposals_applied_total, a gauge)."),
		pending:       d("proposals_pending", "Proposals waiting to commit (etcd_server_proposals_pending)."),
		failed:        d("proposals_failed_total", "Failed proposals since the member started (etcd_server_proposals_failed_total)."),
		dbSize:        d("db_size_bytes", "Backend database size (etcd_mvcc_db_total_size_in_bytes)."),
		dbInUse:       d("db_size_in_use_bytes", "Backend database size in use (etcd_mvcc_db_total_size_in_use_in_bytes)."),
		dbQuota:       d("db_quota_bytes", "Backend quota (etcd_server_quota_backend_bytes)."),
		requests:      d("grpc_requests_total", "Unary gRPC requests the member handled since it started, by gRPC code (grpc_server_handled_total).", "code"),
		operations:    d("mvcc_operations_total", "MVCC operations since the member started, by operation: put, range, txn, delete (etcd_mvcc_*_total).", "operation"),
		fsync:         d("wal_fsync_duration_seconds", "WAL fsync latency, etcd's histogram (etcd_disk_wal_fsync_duration_seconds)."),
		commit:        d("backend_commit_duration_seconds", "Backend commit latency, etcd's histogram (etcd_disk_backend_commit_duration_seconds)."),
		peerRTT:       d("peer_round_trip_time_seconds", "Round trip to peers, all peers merged, etcd's histogram (etcd_network_peer_round_trip_time_seconds)."),
		watchers:      d("watchers", "Watchers on the member (etcd_debugging_mvcc_watcher_total)."),
		watchStreams:  d("watch_streams", "Watch streams on the member (etcd_debugging_mvcc_watch_stream_total)."),
		grpcStreams:   d("grpc_streams", "Open gRPC streams on the member (started minus handled)."),
		cpu:           d("process_cpu_seconds_total", "CPU time the member process used since it started (process_cpu_seconds_total)."),
		rss:           d("process_resident_memory_bytes", "Resident memory of the member process."),
		fds:           d("process_open_fds", "Open file descriptors of the member process."),
		maxFDs:        d("process_max_fds", "File descriptor limit of the member process."),
		diskAvailable: d("disk_available_bytes", "Free space on the member's data filesystem, when its /metrics exposes node_filesystem_avail_bytes."),
		diskTotal:     d("disk_size_bytes", "Size of the member's data filesystem, when its /metrics exposes node_filesystem_size_bytes."),
	}
}

func (e *exporter) vecs() []prometheus.Collector {
	return []prometheus.Collector{e.probe, e.probeErrors, e.scrape, e.scrapeErrors, e.scrapeSize, e.collection}
}

func (e *exporter) descs() []*prometheus.Desc {
	return []*prometheus.Desc{
		e.up, e.hasLeader, e.isLeader, e.leaderChanges, e.committed, e.applied, e.pending, e.failed,
		e.dbSize, e.dbInUse, e.dbQuota, e.requests, e.operations, e.fsync, e.commit, e.peerRTT,
		e.watchers, e.watchStreams, e.grpcStreams, e.cpu, e.rss, e.fds, e.maxFDs, e.diskAvailable, e.diskTotal,
	}
}

func (e *exporter) observeProbes(member string, samples []time.Duration, errs int) {
	h := e.probe.WithLabelValues(member)
	for _, s := range samples {
		h.Observe(s.Seconds())
	}
	e.probeErrors.WithLabelValues(member).Add(float64(errs))
}

func (e *exporter) observeScrape(member string, took time.Duration, size int64, err error) {
	e.scrape.WithLabelValues(member).Observe(took.Seconds())
	e.scrapeSize.WithLabelValues(member).Set(float64(size))
	c := e.scrapeErrors.WithLabelValues(member)
	if err != nil {
		c.Inc()
	}
}

// forget deletes a removed member's series.
func (e *exporter) forget(member string) {
	e.probe.DeleteLabelValues(member)
	e.probeErrors.DeleteLabelValues(member)
	e.scrape.DeleteLabelValues(member)
	e.scrapeErrors.DeleteLabelValues(member)
	e.scrapeSize.DeleteLabelValues(member)
}

func (e *exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range e.vecs() {
		v.Describe(ch)
	}
	for _, d := range e.descs() {
		ch <- d
	}
}

func (e *exporter) Collect(ch chan<- prometheus.Metric) {
	for _, v := range e.vecs() {
		v.Collect(ch)
	}
	snap := e.c.Latest()
	if snap == nil {
		return
	}
	// Constructors that never panic: a label value a member sent (a gRPC code) may be
	// anything; a metric that cannot be built is left out.
	send := func(m prometheus.Metric, err error) {
		if err == nil {
			ch <- m
		}
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		send(prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		send(prometheus.NewConstMetric(d, prometheus.CounterValue, v, labels...))
	}
	histogram := func(d *prometheus.Desc, h Histogram, id string) {
		if h.Total == 0 || len(h.Buckets) == 0 {
			return
		}
		buckets := make(map[float64]uint64, len(h.Buckets))
		for _, b := range h.Buckets[:len(h.Buckets)-1] { // +Inf is implied by the count
			buckets[b.UpperBound] = b.Count
		}
		send(prometheus.NewConstHistogram(d, h.Total, h.Sum, buckets, id))
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, m := range snap.Members {
		id := m.ID.Hex()
		gauge(e.up, b(m.Err == nil), id)
		if !m.Scraped {
			continue
		}
		gauge(e.hasLeader, b(m.Raft.HasLeader), id)
		gauge(e.isLeader, b(m.Raft.IsLeader), id)
		counter(e.leaderChanges, m.Raft.LeaderChanges, id)
		gauge(e.committed, m.Raft.ProposalsCommitted, id)
		gauge(e.applied, m.Raft.ProposalsApplied, id)
		gauge(e.pending, m.Raft.ProposalsPending, id)
		counter(e.failed, m.Raft.ProposalsFailed, id)
		gauge(e.dbSize, float64(m.DB.Size), id)
		gauge(e.dbInUse, float64(m.DB.InUse), id)
		gauge(e.dbQuota, float64(m.DB.Quota), id)
		for code, v := range m.GRPCHandled {
			counter(e.requests, v, id, code)
		}
		counter(e.operations, m.Totals.Puts, id, "put")
		counter(e.operations, m.Totals.Ranges, id, "range")
		counter(e.operations, m.Totals.Txns, id, "txn")
		counter(e.operations, m.Totals.Deletes, id, "delete")
		histogram(e.fsync, m.WALFsync, id)
		histogram(e.commit, m.BackendCommit, id)
		histogram(e.peerRTT, m.PeerRTT, id)
		gauge(e.watchers, m.Watchers, id)
		gauge(e.watchStreams, m.WatchStreams, id)
		gauge(e.grpcStreams, m.GRPCStreams, id)
		counter(e.cpu, m.Process.CPUSeconds, id)
		gauge(e.rss, float64(m.Process.RSS), id)
		gauge(e.fds, m.Process.OpenFDs, id)
		gauge(e.maxFDs, m.Process.MaxFDs, id)
		if m.Disk.Exposed {
			gauge(e.diskAvailable, float64(m.Disk.Available), id)
			gauge(e.diskTotal, float64(m.Disk.Size), id)
		}
	}
}
