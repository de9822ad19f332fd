package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports what the Service knows, computed at scrape time from its in-memory
// state: scraping never reaches etcd.
type collector struct{ s *Service }

var (
	descHealthy      = prometheus.NewDesc("etcd_monitor_cluster_healthy", "1 when the latest health check found the cluster healthy.", []string{"cluster"}, nil)
	descQuorum       = prometheus.NewDesc("etcd_monitor_cluster_has_quorum", "1 when the cluster has quorum.", []string{"cluster"}, nil)
	descHasLeader    = prometheus.NewDesc("etcd_monitor_cluster_has_leader", "1 when the members agree on a leader.", []string{"cluster"}, nil)
	descMembers      = prometheus.NewDesc("etcd_monitor_cluster_members", "Members in the cluster's membership list.", []string{"cluster"}, nil)
	descReachable    = prometheus.NewDesc("etcd_monitor_cluster_members_reachable", "Members that answered the latest health check.", []string{"cluster"}, nil)
	descLeaderChange = prometheus.NewDesc("etcd_monitor_cluster_leader_changes_total", "Leader changes seen by the monitor's health checks since it started.", []string{"cluster"}, nil)
	// Members are told apart by member_id: names may be empty or shared.
	descMemberUp     = prometheus.NewDesc("etcd_monitor_member_reachable", "1 when the member answered the latest health check.", []string{"cluster", "member_id", "member"}, nil)
	descMemberLeader = prometheus.NewDesc("etcd_monitor_member_leader", "1 for the member the cluster agrees is leader.", []string{"cluster", "member_id", "member"}, nil)
	descAlerts       = prometheus.NewDesc("etcd_monitor_alerts_firing", "Alerts firing, by severity.", []string{"cluster", "severity"}, nil)
	descChecks       = prometheus.NewDesc("etcd_monitor_health_checks_total", "Health checks run.", []string{"cluster"}, nil)
	descCheckErrors  = prometheus.NewDesc("etcd_monitor_health_check_errors_total", "Health checks that could not read the cluster at all.", []string{"cluster"}, nil)
	descCollects     = prometheus.NewDesc("etcd_monitor_metric_collections_total", "Metric collections run.", []string{"cluster"}, nil)
	descCollectErrs  = prometheus.NewDesc("etcd_monitor_metric_collection_errors_total", "Metric collections that could not read the cluster at all.", []string{"cluster"}, nil)
	descLastCheck    = prometheus.NewDesc("etcd_monitor_last_health_check_timestamp_seconds", "When the latest health check finished.", []string{"cluster"}, nil)
	descBench        = prometheus.NewDesc("etcd_monitor_benchmark_throughput", "Throughput of the latest benchmark run through the API, in ops/s.", []string{"cluster", "workload"}, nil)
	descBenchP99     = prometheus.NewDesc("etcd_monitor_benchmark_p99_seconds", "p99 latency of the latest benchmark run through the API.", []string{"cluster", "workload"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHealthy, descQuorum, descHasLeader, descMembers, descReachable, descLeaderChange,
		descMemberUp, descMemberLeader, descAlerts, descChecks, descCheckErrors, descCollects, descCollectErrs, descLastCheck, descBench, descBenchP99} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	firing := map[string]map[string]float64{}
	for _, a := range c.s.alerts.Active() {
		cl := a.Labels["cluster"]
		if firing[cl] == nil {
			firing[cl] = map[string]float64{}
		}
		firing[cl][a.Severity.String()]++
	}
	for _, cs := range c.s.clusters {
		name := cs.name
		counter(descChecks, float64(cs.checks.Load()), name)
		counter(descCheckErrors, float64(cs.checkErrors.Load()), name)
		counter(descCollects, float64(cs.collects.Load()), name)
		counter(descCollectErrs, float64(cs.collectErrs.Load()), name)
		counter(descLeaderChange, float64(cs.leaderChg.Load()), name)

		for _, sev := range []string{"info", "warning", "critical"} {
			gauge(descAlerts, firing[name][sev], name, sev)
		}

		cs.mu.RLock()
		rep, at, lb := cs.report, cs.healthAt, cs.lastBench
		cs.mu.RUnlock()
		if lb != nil {
			gauge(descBench, lb.Result.Throughput, name, string(lb.Result.Workload))
			gauge(descBenchP99, lb.Result.Latency.P99.Seconds(), name, string(lb.Result.Workload))
		}
		if rep == nil {
			continue
		}
		gauge(descLastCheck, float64(at.UnixNano())/1e9, name)
		gauge(descHealthy, b2f(rep.Healthy), name)
		gauge(descQuorum, b2f(rep.Quorum.HasQuorum), name)
		gauge(descHasLeader, b2f(rep.Leader.ID != 0 && rep.Leader.Agreed), name)
		gauge(descMembers, float64(len(rep.Members)), name)
		reachable := 0
		for _, m := range rep.Members {
			if m.Reachable {
				reachable++
			}
			id := m.Member.ID.Hex()
			gauge(descMemberUp, b2f(m.Reachable), name, id, m.Name)
			gauge(descMemberLeader, b2f(m.Member.ID == rep.Leader.ID), name, id, m.Name)
		}
		gauge(descReachable, float64(reachable), name)
	}
}
