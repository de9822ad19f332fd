package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// exporter turns the latest snapshot into Prometheus metrics.
type exporter struct {
	c *Collector

	up, latency, requests                *prometheus.Desc
	dbSize, dbInUse, dbQuota, dbGrowth   *prometheus.Desc
	hasLeader, isLeader, leaderChanges   *prometheus.Desc
	committed, applied, pending, failed  *prometheus.Desc
	fsync, fsyncSlow, commit, peerRTT    *prometheus.Desc
	watchers, grpcStreams, cpu, rss, fds *prometheus.Desc
}

func newExporter(c *Collector) *exporter {
	// Series are keyed by member ID (names may be empty or repeated); the name is kept
	// for people and dashboards.
	m := []string{"member_id", "member"}
	mq := []string{"member_id", "member", "quantile"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("etcd_monitor_"+name, help, labels, nil)
	}
	return &exporter{
		c:             c,
		up:            d("member_up", "1 when the member answered both the probe and the scrape of the latest collection.", m),
		latency:       d("probe_latency_seconds", "Linearizable read latency through the member, by quantile.", mq),
		requests:      d("requests_per_second", "Unary gRPC requests handled by the member per second.", m),
		dbSize:        d("db_size_bytes", "Backend database size.", m),
		dbInUse:       d("db_in_use_bytes", "Backend database size in use.", m),
		dbQuota:       d("db_quota_bytes", "Backend quota.", m),
		dbGrowth:      d("db_growth_bytes_per_second", "Change of the backend size per second.", m),
		hasLeader:     d("has_leader", "1 when the member sees a leader.", m),
		isLeader:      d("is_leader", "1 when the member is the leader.", m),
		leaderChanges: d("leader_changes_seen_total", "Leader changes the member has seen.", m),
		committed:     d("proposals_committed", "Committed raft index of the member.", m),
		applied:       d("proposals_applied", "Applied raft index of the member.", m),
		pending:       d("proposals_pending", "Proposals waiting to commit.", m),
		failed:        d("proposals_failed_total", "Failed proposals.", m),
		fsync:         d("wal_fsync_seconds", "WAL fsync duration, by quantile.", mq),
		fsyncSlow:     d("wal_fsync_over_16ms_ratio", "Share of WAL fsyncs slower than 16ms.", m),
		commit:        d("backend_commit_seconds", "Backend commit duration, by quantile.", mq),
		peerRTT:       d("peer_round_trip_seconds", "Round trip to peers, by quantile.", mq),
		watchers:      d("watchers", "Watchers on the member.", m),
		grpcStreams:   d("grpc_streams", "Open gRPC streams on the member.", m),
		cpu:           d("process_cpu_cores", "CPU seconds per second used by the member process.", m),
		rss:           d("process_resident_memory_bytes", "Resident memory of the member process.", m),
		fds:           d("process_open_fds", "Open file descriptors of the member process.", m),
	}
}

func (e *exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		e.up, e.latency, e.requests, e.dbSize, e.dbInUse, e.dbQuota, e.dbGrowth,
		e.hasLeader, e.isLeader, e.leaderChanges, e.committed, e.applied, e.pending, e.failed,
		e.fsync, e.fsyncSlow, e.commit, e.peerRTT, e.watchers, e.grpcStreams, e.cpu, e.rss, e.fds,
	} {
		ch <- d
	}
}

func (e *exporter) Collect(ch chan<- prometheus.Metric) {
	snap := e.c.Latest()
	if snap == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, m := range snap.Members {
		id, n := m.ID.Hex(), m.Name
		gauge(e.up, b(m.Err == nil), id, n)
		if m.Latency.Samples > 0 {
			gauge(e.latency, m.Latency.P50.Seconds(), id, n, "0.5")
			gauge(e.latency, m.Latency.P95.Seconds(), id, n, "0.95")
			gauge(e.latency, m.Latency.P99.Seconds(), id, n, "0.99")
		}
		if !m.Scraped {
			continue
		}
		gauge(e.requests, m.Throughput.Requests, id, n)
		gauge(e.dbSize, float64(m.DB.Size), id, n)
		gauge(e.dbInUse, float64(m.DB.InUse), id, n)
		gauge(e.dbQuota, float64(m.DB.Quota), id, n)
		gauge(e.dbGrowth, m.DB.GrowthRate, id, n)
		gauge(e.hasLeader, b(m.Raft.HasLeader), id, n)
		gauge(e.isLeader, b(m.Raft.IsLeader), id, n)
		counter(e.leaderChanges, m.Raft.LeaderChanges, id, n)
		gauge(e.committed, m.Raft.ProposalsCommitted, id, n)
		gauge(e.applied, m.Raft.ProposalsApplied, id, n)
		gauge(e.pending, m.Raft.ProposalsPending, id, n)
		counter(e.failed, m.Raft.ProposalsFailed, id, n)
		for _, h := range []struct {
			d *prometheus.Desc
			h Histogram
		}{{e.fsync, m.WALFsync}, {e.commit, m.BackendCommit}, {e.peerRTT, m.PeerRTT}} {
			if h.h.Count > 0 {
				gauge(h.d, h.h.P50.Seconds(), id, n, "0.5")
				gauge(h.d, h.h.P99.Seconds(), id, n, "0.99")
			}
		}
		if m.WALFsync.Count > 0 {
			gauge(e.fsyncSlow, m.WALFsync.Over16ms, id, n)
		}
		gauge(e.watchers, m.Watchers, id, n)
		gauge(e.grpcStreams, m.GRPCStreams, id, n)
		gauge(e.cpu, m.Process.CPUUsage, id, n)
		gauge(e.rss, float64(m.Process.RSS), id, n)
		gauge(e.fds, m.Process.OpenFDs, id, n)
	}
}
