package alert

import (
	"fmt"
	"time"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// Rule turns a health report and a metric snapshot into findings. Either input may be
// nil (the caller had only one of them); a rule with nothing to look at finds nothing.
type Rule struct {
	// Name is the alert name, such as "EtcdNoLeader".
	Name     string
	Severity Severity
	// Summary is the one-line text of the alert.
	Summary string
	// Eval returns one Finding per firing instance (none when all is well). It runs on
	// the Manager's evaluating goroutine and must not block.
	Eval func(h *health.Report, s *metrics.Snapshot) []Finding
}

// Finding is one firing instance of a rule.
type Finding struct {
	Labels      map[string]string
	Value       float64
	Description string
}

// Thresholds parameterise the default rules. Zero values are invalid; start from
// DefaultThresholds.
type Thresholds struct {
	// LeaderChanges within LeaderChangesWindow fire EtcdHighNumberOfLeaderChanges (4 in 15m).
	LeaderChanges       int
	LeaderChangesWindow time.Duration
	// FailedProposalsPerHour fires EtcdHighNumberOfFailedProposals (5).
	FailedProposalsPerHour float64
	// FsyncP99 and CommitP99 fire EtcdHighFsyncDurations (500ms) and
	// EtcdHighCommitDurations (250ms).
	FsyncP99  time.Duration
	CommitP99 time.Duration
	// QuotaUsed is the DB size / quota ratio that fires EtcdDatabaseQuotaLowSpace (0.95).
	QuotaUsed float64
	// FillWithin fires EtcdExcessiveDatabaseGrowth when the DB's growth rate would fill
	// the quota within it (4h).
	FillWithin time.Duration
	// Fragmentation is the in-use / size ratio below which EtcdDatabaseHighFragmentationRatio
	// fires (0.5), for databases whose in-use size exceeds FragmentationMinInUse (100 MiB).
	Fragmentation         float64
	FragmentationMinInUse int64
	// RequestLatencyP99 fires EtcdHighRequestLatency on probe latency (150ms).
	RequestLatencyP99 time.Duration
	// RaftIndexLag fires EtcdRaftIndexLag for a member whose raft index trails the
	// leader's by more (1000 entries).
	RaftIndexLag uint64
}

// DefaultThresholds returns the thresholds of the etcd mixin where it has one.
func DefaultThresholds() Thresholds {
	return Thresholds{
		LeaderChanges:          4,
		LeaderChangesWindow:    15 * time.Minute,
		FailedProposalsPerHour: 5,
		FsyncP99:               500 * time.Millisecond,
		CommitP99:              250 * time.Millisecond,
		QuotaUsed:              0.95,
		FillWithin:             4 * time.Hour,
		Fragmentation:          0.5,
		FragmentationMinInUse:  100 << 20,
		RequestLatencyP99:      150 * time.Millisecond,
		RaftIndexLag:           1000,
	}
}

// Validate reports the first threshold out of range.
func (t Thresholds) Validate() error {
	bad := func(name string, v any) error {
		return fmt.Errorf("%w: %s = %v", ErrInvalidThreshold, name, v)
	}
	switch {
	case t.LeaderChanges < 1:
		return bad("LeaderChanges", t.LeaderChanges)
	case t.LeaderChangesWindow <= 0:
		return bad("LeaderChangesWindow", t.LeaderChangesWindow)
	case t.FailedProposalsPerHour <= 0:
		return bad("FailedProposalsPerHour", t.FailedProposalsPerHour)
	case t.FsyncP99 <= 0:
		return bad("FsyncP99", t.FsyncP99)
	case t.CommitP99 <= 0:
		return bad("CommitP99", t.CommitP99)
	case t.QuotaUsed <= 0 || t.QuotaUsed > 1:
		return bad("QuotaUsed (want (0, 1])", t.QuotaUsed)
	case t.FillWithin <= 0:
		return bad("FillWithin", t.FillWithin)
	case t.Fragmentation <= 0 || t.Fragmentation >= 1:
		return bad("Fragmentation (want (0, 1))", t.Fragmentation)
	case t.FragmentationMinInUse < 0:
		return bad("FragmentationMinInUse", t.FragmentationMinInUse)
	case t.RequestLatencyP99 <= 0:
		return bad("RequestLatencyP99", t.RequestLatencyP99)
	case t.RaftIndexLag < 1:
		return bad("RaftIndexLag", t.RaftIndexLag)
	}
	return nil
}

func member(name string) map[string]string { return map[string]string{"member": name} }

// DefaultRules returns the default rule set for t: the etcd mixin's rules plus split
// brain, partition, raft index lag and alarms.
func DefaultRules(t Thresholds) []Rule {
	return []Rule{
		{Name: "EtcdNoLeader", Severity: Critical, Summary: "etcd member has no leader",
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				var out []Finding
				if h == nil {
					return nil
				}
				for _, m := range h.Members {
					if m.Reachable && m.Status.Leader == 0 {
						out = append(out, Finding{Labels: member(m.Name), Description: fmt.Sprintf("member %s (%x) sees no leader", m.Name, m.Member.ID)})
					}
				}
				return out
			}},
		{Name: "EtcdInsufficientMembers", Severity: Critical, Summary: "etcd cluster has lost quorum",
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if h == nil || h.Quorum.HasQuorum {
					return nil
				}
				return []Finding{{Value: float64(h.Quorum.Healthy),
					Description: fmt.Sprintf("%d of %d voting members healthy, quorum needs %d", h.Quorum.Healthy, h.Quorum.Voters, h.Quorum.Size)}}
			}},
		{Name: "EtcdMembersDown", Severity: Warning, Summary: "etcd member is down",
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if h == nil {
					return nil
				}
				var out []Finding
				for _, m := range h.Members {
					if !m.Reachable {
						out = append(out, Finding{Labels: member(m.Name), Description: fmt.Sprintf("member %s unreachable: %s", m.Name, m.Error)})
					}
				}
				return out
			}},
		{Name: "EtcdHighNumberOfLeaderChanges", Severity: Warning, Summary: "etcd cluster changes leader often",
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if h == nil {
					return nil
				}
				n := 0
				for _, c := range h.LeaderHistory {
					if c.From != 0 && h.Time.Sub(c.Time) <= t.LeaderChangesWindow {
						n++
					}
				}
				if n < t.LeaderChanges {
					return nil
				}
				return []Finding{{Value: float64(n), Description: fmt.Sprintf("%d leader changes within %v", n, t.LeaderChangesWindow)}}
			}},
		memberRule("EtcdHighNumberOfFailedProposals", Warning, "etcd member has failed proposals",
			func(m metrics.MemberMetrics) (float64, bool, string) {
				v := m.Raft.ProposalsFailedRate * 3600
				return v, v > t.FailedProposalsPerHour, fmt.Sprintf("%.1f failed proposals per hour", v)
			}),
		memberRule("EtcdHighFsyncDurations", Warning, "etcd WAL fsync is slow",
			func(m metrics.MemberMetrics) (float64, bool, string) {
				return m.WALFsync.P99.Seconds(), m.WALFsync.Count > 0 && m.WALFsync.P99 > t.FsyncP99,
					fmt.Sprintf("WAL fsync p99 %v (%.1f%% over 16ms)", m.WALFsync.P99, 100*m.WALFsync.Over16ms)
			}),
		memberRule("EtcdHighCommitDurations", Warning, "etcd backend commit is slow",
			func(m metrics.MemberMetrics) (float64, bool, string) {
				return m.BackendCommit.P99.Seconds(), m.BackendCommit.Count > 0 && m.BackendCommit.P99 > t.CommitP99,
					fmt.Sprintf("backend commit p99 %v", m.BackendCommit.P99)
			}),
		{Name: "EtcdDatabaseQuotaLowSpace", Severity: Critical, Summary: "etcd database is nearly full",
			Eval: func(h *health.Report, s *metrics.Snapshot) []Finding {
				var out []Finding
				for _, d := range dbSizes(h, s) {
					if d.quota > 0 {
						if r := float64(d.size) / float64(d.quota); r > t.QuotaUsed {
							out = append(out, Finding{Labels: member(d.name), Value: r,
								Description: fmt.Sprintf("database uses %.1f%% of its %d-byte quota", 100*r, d.quota)})
						}
					}
				}
				return out
			}},
		memberRule("EtcdExcessiveDatabaseGrowth", Warning, "etcd database will fill its quota soon",
			func(m metrics.MemberMetrics) (float64, bool, string) {
				if m.DB.GrowthRate <= 0 || m.DB.Quota <= 0 {
					return 0, false, ""
				}
				left := time.Duration(float64(m.DB.Quota-m.DB.Size) / m.DB.GrowthRate * float64(time.Second))
				return left.Seconds(), left < t.FillWithin, fmt.Sprintf("at %.0f B/s the quota is full in %v", m.DB.GrowthRate, left.Round(time.Second))
			}),
		{Name: "EtcdDatabaseHighFragmentationRatio", Severity: Warning, Summary: "etcd database is fragmented; defragment it",
			Eval: func(h *health.Report, s *metrics.Snapshot) []Finding {
				var out []Finding
				for _, d := range dbSizes(h, s) {
					if d.size > 0 && d.inUse > t.FragmentationMinInUse {
						if r := float64(d.inUse) / float64(d.size); r < t.Fragmentation {
							out = append(out, Finding{Labels: member(d.name), Value: r,
								Description: fmt.Sprintf("%.1f%% of the %d-byte database in use", 100*r, d.size)})
						}
					}
				}
				return out
			}},
		memberRule("EtcdHighRequestLatency", Warning, "etcd requests are slow",
			func(m metrics.MemberMetrics) (float64, bool, string) {
				return m.Latency.P99.Seconds(), m.Latency.Samples > 0 && m.Latency.P99 > t.RequestLatencyP99,
					fmt.Sprintf("probe p99 %v over %d samples", m.Latency.P99, m.Latency.Samples)
			}),
		{Name: "EtcdSplitBrain", Severity: Critical, Summary: "etcd members disagree about the leader or the cluster",
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if h == nil || !h.SplitBrain.Detected {
					return nil
				}
				return []Finding{{Value: float64(h.SplitBrain.Term), Description: h.SplitBrain.Reason}}
			}},
		{Name: "EtcdMemberPartitioned", Severity: Critical, Summary: "etcd member is cut off from its peers",
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if h == nil {
					return nil
				}
				var out []Finding
				for _, p := range h.Partition.Members {
					if p.Reason == health.ReasonNoLeader {
						out = append(out, Finding{Labels: member(p.Name),
							Description: fmt.Sprintf("member %s is reachable but sees no leader while the cluster has one", p.Name)})
					}
				}
				return out
			}},
		{Name: "EtcdRaftIndexLag", Severity: Warning, Summary: "etcd member lags the leader",
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if h == nil {
					return nil
				}
				lead, ok := h.Member(h.Leader.ID)
				if !ok || !lead.Reachable {
					return nil
				}
				var out []Finding
				for _, m := range h.Members {
					if m.Reachable && lead.RaftIndex > m.RaftIndex && lead.RaftIndex-m.RaftIndex > t.RaftIndexLag {
						lag := lead.RaftIndex - m.RaftIndex
						out = append(out, Finding{Labels: member(m.Name), Value: float64(lag),
							Description: fmt.Sprintf("raft index %d behind the leader", lag)})
					}
				}
				return out
			}},
		{Name: "EtcdAlarm", Severity: Critical, Summary: "etcd alarm raised",
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if h == nil {
					return nil
				}
				var out []Finding
				for _, a := range h.Alarms {
					name := fmt.Sprintf("%x", a.MemberID)
					if m, ok := h.Member(a.MemberID); ok {
						name = m.Name
					}
					out = append(out, Finding{Labels: map[string]string{"member": name, "alarm": a.Type},
						Description: fmt.Sprintf("alarm %s on member %s", a.Type, name)})
				}
				return out
			}},
	}
}

// memberRule builds a rule over each scraped member of a snapshot.
func memberRule(name string, sev Severity, summary string, check func(metrics.MemberMetrics) (float64, bool, string)) Rule {
	return Rule{Name: name, Severity: sev, Summary: summary,
		Eval: func(_ *health.Report, s *metrics.Snapshot) []Finding {
			if s == nil {
				return nil
			}
			var out []Finding
			for _, m := range s.Members {
				if !m.Scraped && m.Latency.Samples == 0 {
					continue
				}
				if v, firing, desc := check(m); firing {
					out = append(out, Finding{Labels: member(m.Name), Value: v, Description: desc})
				}
			}
			return out
		}}
}

type dbSize struct {
	name               string
	size, inUse, quota int64
}

// dbSizes prefers the snapshot's scraped sizes and falls back to the report's statuses.
func dbSizes(h *health.Report, s *metrics.Snapshot) []dbSize {
	var out []dbSize
	seen := map[string]bool{}
	if s != nil {
		for _, m := range s.Members {
			if m.Scraped {
				out = append(out, dbSize{m.Name, m.DB.Size, m.DB.InUse, m.DB.Quota})
				seen[m.Name] = true
			}
		}
	}
	if h != nil {
		for _, m := range h.Members {
			if m.Reachable && !seen[m.Name] {
				out = append(out, dbSize{m.Name, m.DBSize, m.DBSizeInUse, m.DBSizeQuota})
			}
		}
	}
	return out
}
