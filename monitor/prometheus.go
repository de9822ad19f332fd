package monitor

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
)

// collector exports what the Service knows, computed at scrape time from its in-memory
// state: scraping never reaches etcd.
//
// Names start with etcd_monitor_; every series carries the cluster's name (label
// cluster) and, when it is about a member, the member's ID in hex as etcdctl prints it
// (label member): names may be empty or shared, so they live only in
// etcd_monitor_member_info, to join on. Counters end in _total, durations are histograms
// in seconds. Each cluster's metrics.Collector exports, under the same cluster label,
// the probe, scrape and collection histograms and what the members' /metrics said (see
// package metrics); the alert manager exports etcd_monitor_notifications_total.
type collector struct {
	s *Service

	mu sync.Mutex
	// versions are the members' last known versions, by cluster and member: an
	// unreachable member reports none, and its info series should not change labels
	// (and break joins) exactly when it is down.
	versions map[string]map[string]string
}

var (
	cl  = []string{"cluster"}
	clm = []string{"cluster", "member"}

	descHealthy      = prometheus.NewDesc("etcd_monitor_cluster_healthy", "1 when the latest health check found the cluster healthy (quorum, an agreed leader, no split brain, no partition, no alarm).", cl, nil)
	descQuorum       = prometheus.NewDesc("etcd_monitor_cluster_has_quorum", "1 when the cluster has quorum.", cl, nil)
	descHasLeader    = prometheus.NewDesc("etcd_monitor_cluster_has_leader", "1 when the members agree on a leader.", cl, nil)
	descMembers      = prometheus.NewDesc("etcd_monitor_cluster_members", "Members in the cluster's membership list.", cl, nil)
	descReachable    = prometheus.NewDesc("etcd_monitor_cluster_members_reachable", "Members that answered the latest health check.", cl, nil)
	descTolerated    = prometheus.NewDesc("etcd_monitor_cluster_failures_tolerated", "How many more voting members may fail before the cluster loses quorum (negative: quorum is lost).", cl, nil)
	descLeaderChange = prometheus.NewDesc("etcd_monitor_cluster_leader_changes_total", "Leader changes seen by the monitor's health checks since it started.", cl, nil)
	descMemberUp     = prometheus.NewDesc("etcd_monitor_member_reachable", "1 when the member answered the latest health check.", clm, nil)
	descMemberLeader = prometheus.NewDesc("etcd_monitor_member_leader", "1 for the member the cluster agrees is leader.", clm, nil)
	descMemberInfo   = prometheus.NewDesc("etcd_monitor_member_info", "Always 1: the member's name, version and role, to join on cluster and member.", []string{"cluster", "member", "name", "version", "learner"}, nil)
	descAlerts       = prometheus.NewDesc("etcd_monitor_alerts_firing", "Alerts firing, by severity.", []string{"cluster", "severity"}, nil)
	descCheckTime    = prometheus.NewDesc("etcd_monitor_health_check_duration_seconds", "Duration of the cluster's health checks (membership, every member's status, alarms), failed ones included.", cl, nil)
	descCheckErrors  = prometheus.NewDesc("etcd_monitor_health_check_errors_total", "Health checks that could not read the cluster at all.", cl, nil)
	descCollectErrs  = prometheus.NewDesc("etcd_monitor_metric_collection_errors_total", "Metric collections that could not read the cluster at all.", cl, nil)
	descLastCheck    = prometheus.NewDesc("etcd_monitor_last_health_check_timestamp_seconds", "When the latest health check finished, in seconds since the epoch.", cl, nil)
	descBench        = prometheus.NewDesc("etcd_monitor_benchmark_throughput", "Throughput of the latest benchmark run through the API, in operations per second.", []string{"cluster", "workload"}, nil)
	descBenchP99     = prometheus.NewDesc("etcd_monitor_benchmark_p99_seconds", "p99 latency of the latest benchmark run through the API.", []string{"cluster", "workload"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHealthy, descQuorum, descHasLeader, descMembers, descReachable, descTolerated,
		descLeaderChange, descMemberUp, descMemberLeader, descMemberInfo, descAlerts, descCheckTime, descCheckErrors,
		descCollectErrs, descLastCheck, descBench, descBenchP99} {
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
	// Label values come from members (names, versions): never panic on one.
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
	firing := map[string]map[string]float64{}
	var active []alert.Alert
	if m := c.s.alertManager(); m != nil { // the evaluating term's; none on a standby
		active = m.Active()
	}
	for _, a := range active {
		cl := a.Labels["cluster"]
		if firing[cl] == nil {
			firing[cl] = map[string]float64{}
		}
		firing[cl][a.Severity.String()]++
	}
	for _, cs := range c.s.clusters {
		name := cs.name
		st := cs.checker.Stats()
		buckets := make(map[float64]uint64, len(st.Buckets))
		for _, b := range st.Buckets {
			buckets[b.UpperBound.Seconds()] = b.Count
		}
		send(prometheus.NewConstHistogram(descCheckTime, st.Count, st.Sum.Seconds(), buckets, name))
		counter(descCheckErrors, float64(cs.checkErrors.Load()), name)
		counter(descCollectErrs, float64(cs.collectErrs.Load()), name)
		counter(descLeaderChange, float64(cs.leaderChg.Load()), name)

		for _, sev := range []string{"info", "warning", "critical"} {
			gauge(descAlerts, firing[name][sev], name, sev)
		}

		cs.mu.RLock()
		rep, at, lb := cs.report, cs.healthAt, cs.lastBench
		cs.mu.RUnlock()
		if lb != nil && lb.Result != nil {
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
		gauge(descTolerated, float64(rep.Quorum.Healthy-rep.Quorum.Size), name)
		reachable := 0
		versions := c.knownVersions(name, rep)
		for _, m := range rep.Members {
			if m.Reachable {
				reachable++
			}
			id := m.Member.ID.Hex()
			gauge(descMemberUp, b2f(m.Reachable), name, id)
			gauge(descMemberLeader, b2f(m.Member.ID == rep.Leader.ID), name, id)
			learner := "false"
			if m.Member.IsLearner {
				learner = "true"
			}
			gauge(descMemberInfo, 1, name, id, m.Member.Name, versions[id], learner)
		}
		gauge(descReachable, float64(reachable), name)
	}
}

// knownVersions returns the version of every member of the report: the one it reports,
// or the last one it reported while reachable. Members that left are forgotten.
func (c *collector) knownVersions(cluster string, rep *health.Report) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.versions == nil {
		c.versions = map[string]map[string]string{}
	}
	prev := c.versions[cluster]
	cur := make(map[string]string, len(rep.Members))
	for _, m := range rep.Members {
		id := m.Member.ID.Hex()
		if m.Reachable && m.Version != "" {
			cur[id] = m.Version
		} else {
			cur[id] = prev[id]
		}
	}
	c.versions[cluster] = cur
	return cur
}
