package alert

import (
	"fmt"
	"time"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// failedGRPCCodes are the codes the etcd mixin counts as server-side failures.
var failedGRPCCodes = []string{"Unknown", "FailedPrecondition", "ResourceExhausted", "Internal", "Unavailable", "DataLoss", "DeadlineExceeded"}

func healthMember(m health.MemberStatus) map[string]string {
	return MemberLabels(uint64(m.Member.ID), m.Name)
}

// NoLeaderFor is EtcdNoLeader's default for: longer than an etcd leader election, so
// that a health check which happens to catch one does not page. The monitor checks a
// cluster without a leader again 5 s after (monitor.ConfirmAfter), whatever its health
// interval, so the page comes within the interval plus about 7 s.
const NoLeaderFor = 5 * time.Second

// DefaultRules returns the default rule set for t: the etcd mixin's rules over etcd's
// own counters and histograms (over windows of history), plus quorum, split brain,
// partition, raft index lag, alarms, metrics availability and disk space. The timing of
// each (For, KeepFiringFor) is documented in the package's README table.
func DefaultRules(t Thresholds) []Rule {
	rules := []Rule{
		{Name: "EtcdClusterUnreachable", Severity: Critical, Summary: "no etcd member answers", Needs: NeedsHealth,
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				for _, m := range h.Members {
					if m.Reachable {
						return nil
					}
				}
				if len(h.Members) == 0 {
					return nil
				}
				return []Finding{{Description: fmt.Sprintf("none of %d members answers its status request", len(h.Members))}}
			}},
		{Name: "EtcdInsufficientMembers", Severity: Critical, Summary: "etcd cluster has lost quorum", Needs: NeedsHealth,
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				voters, up := 0, 0
				for _, m := range h.Members {
					if !m.Member.IsLearner {
						voters++
						if m.Reachable {
							up++
						}
					}
				}
				if voters == 0 || up >= voters/2+1 {
					return nil
				}
				return []Finding{{Value: float64(up),
					Description: fmt.Sprintf("%d of %d voting members reachable, quorum needs %d", up, voters, voters/2+1)}}
			}},
		// For: longer than an election (etcd's election timeout, 1 s by default,
		// randomised up to twice that), so a check that catches one does not page.
		{Name: "EtcdNoLeader", Severity: Critical, For: NoLeaderFor, Summary: "etcd cluster has no leader", Needs: NeedsHealth,
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				voters, up := 0, 0
				for _, m := range h.Members {
					if !m.Member.IsLearner {
						voters++
						if m.Reachable {
							up++
						}
					}
				}
				// A quorum answers, yet fewer than a quorum see a leader.
				if voters == 0 || up < voters/2+1 || h.Quorum.Healthy >= voters/2+1 {
					return nil
				}
				return []Finding{{Value: float64(h.Quorum.Healthy),
					Description: fmt.Sprintf("%d of %d reachable voting members see a leader", h.Quorum.Healthy, up)}}
			}},
		{Name: "EtcdMembersDown", Severity: Warning, For: 3 * time.Minute, Summary: "etcd member is down", Needs: NeedsHealth,
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				var out []Finding
				for _, m := range h.Members {
					if !m.Reachable {
						out = append(out, Finding{Labels: healthMember(m), Description: fmt.Sprintf("member %s unreachable: %s", m.Name, m.Error)})
					}
				}
				return out
			}},
		{Name: "EtcdMemberNoLeader", Severity: Critical, For: time.Minute, Summary: "etcd member sees no leader", Needs: NeedsHealth,
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if h.Quorum.Healthy < h.Quorum.Size || h.Quorum.Size == 0 {
					return nil // the cluster has no leader: EtcdNoLeader or EtcdInsufficientMembers
				}
				var out []Finding
				for _, m := range h.Members {
					if m.Reachable && m.Status.Leader == 0 {
						out = append(out, Finding{Labels: healthMember(m),
							Description: fmt.Sprintf("member %s is reachable but sees no leader while the cluster has one", m.Name)})
					}
				}
				return out
			}},
		{Name: "EtcdHighNumberOfLeaderChanges", Severity: Warning, For: 5 * time.Minute, Needs: NeedsMetrics,
			Summary: "etcd cluster changes leader often",
			Check: func(in *Input) []Finding {
				best, known := 0.0, false
				for _, m := range in.Metrics.Members {
					if n, ok := in.counterIncrease(m.ID, t.LeaderChangesWindow, leaderChanges); ok {
						best, known = max(best, n), true
					}
				}
				switch {
				case !known:
					return []Finding{{Missing: true}}
				case best < float64(t.LeaderChanges):
					return nil
				}
				return []Finding{{Value: best, Description: fmt.Sprintf("%.0f leader changes within %v", best, t.LeaderChangesWindow)}}
			}},
		perMember(Rule{Name: "EtcdHighNumberOfFailedProposals", Severity: Warning, For: 15 * time.Minute,
			Summary: "etcd member has failed proposals"},
			func(in *Input, m *metrics.MemberMetrics) (float64, bool, bool, string) {
				n, ok := in.counterIncrease(m.ID, t.FailedProposalsWindow, proposalsFailed)
				return n, n > t.FailedProposals, ok, fmt.Sprintf("%.0f failed proposals within %v", n, t.FailedProposalsWindow)
			}),
		grpcRule(t, Warning, t.GRPCFailedWarning, 10*time.Minute),
		grpcRule(t, Critical, t.GRPCFailedCritical, 5*time.Minute),
		histRule("EtcdMemberCommunicationSlow", Warning, "etcd member communication is slow", t.PeerRTTP99, t.HistogramWindow,
			"peer round trip", func(m *metrics.MemberMetrics) metrics.Histogram { return m.PeerRTT }),
		histRule("EtcdHighFsyncDurations", Warning, "etcd WAL fsync is slow", t.FsyncP99, t.HistogramWindow,
			"WAL fsync", func(m *metrics.MemberMetrics) metrics.Histogram { return m.WALFsync }),
		histRule("EtcdHighFsyncDurations", Critical, "etcd WAL fsync is very slow", t.FsyncP99Critical, t.HistogramWindow,
			"WAL fsync", func(m *metrics.MemberMetrics) metrics.Histogram { return m.WALFsync }),
		histRule("EtcdHighCommitDurations", Warning, "etcd backend commit is slow", t.CommitP99, t.HistogramWindow,
			"backend commit", func(m *metrics.MemberMetrics) metrics.Histogram { return m.BackendCommit }),
		perMember(Rule{Name: "EtcdHighNumberOfPendingProposals", Severity: Warning, For: 5 * time.Minute,
			Summary: "etcd member has a long proposal queue"},
			func(in *Input, m *metrics.MemberMetrics) (float64, bool, bool, string) {
				ss := in.series(uint64(m.ID), t.HistogramWindow)
				var sum float64
				for _, s := range ss {
					sum += s.m.Raft.ProposalsPending
				}
				avg := sum / float64(max(len(ss), 1))
				return avg, avg > t.ProposalsPending, len(ss) > 0,
					fmt.Sprintf("%.1f proposals pending on average over %v", avg, t.HistogramWindow)
			}),
		{Name: "EtcdDatabaseQuotaLowSpace", Severity: Critical, For: 10 * time.Minute, Summary: "etcd database is nearly full",
			Eval: func(h *health.Report, s *metrics.Snapshot) []Finding {
				var out []Finding
				for _, d := range dbSizes(h, s) {
					if d.missing {
						out = append(out, Finding{Labels: d.labels, Missing: true})
					} else if d.quota > 0 {
						if r := float64(d.size) / float64(d.quota); r > t.QuotaUsed {
							out = append(out, Finding{Labels: d.labels, Value: r,
								Description: fmt.Sprintf("database uses %.1f%% of its %d-byte quota", 100*r, d.quota)})
						}
					}
				}
				return out
			}},
		perMember(Rule{Name: "EtcdExcessiveDatabaseGrowth", Severity: Warning, For: 10 * time.Minute,
			Summary: "etcd database will fill its quota soon"},
			func(in *Input, m *metrics.MemberMetrics) (float64, bool, bool, string) {
				// Beyond the short windows the sizes are kept one a minute; the
				// regression weighs each sample by the time it stands for.
				pred, slope, ok := regression(in.dbSizeSeries(m.ID, t.GrowthWindow), t.GrowthMinSpan, t.FillWithin)
				if !ok || m.DB.Quota <= 0 {
					return 0, false, ok, ""
				}
				return pred, pred > float64(m.DB.Quota), true, fmt.Sprintf("at %.0f B/s the database reaches %.0f of its %d-byte quota within %v",
					slope, pred, m.DB.Quota, t.FillWithin)
			}),
		{Name: "EtcdDatabaseHighFragmentationRatio", Severity: Warning, For: 10 * time.Minute,
			Summary: "etcd database is fragmented; defragment it",
			Eval: func(h *health.Report, s *metrics.Snapshot) []Finding {
				var out []Finding
				for _, d := range dbSizes(h, s) {
					if d.missing {
						out = append(out, Finding{Labels: d.labels, Missing: true})
					} else if d.size > 0 && d.inUse > t.FragmentationMinInUse {
						if r := float64(d.inUse) / float64(d.size); r < t.Fragmentation {
							out = append(out, Finding{Labels: d.labels, Value: r,
								Description: fmt.Sprintf("%.1f%% of the %d-byte database in use", 100*r, d.size)})
						}
					}
				}
				return out
			}},
		{Name: "EtcdHighRequestLatency", Severity: Warning, For: 10 * time.Minute, Summary: "etcd requests are slow", Needs: NeedsMetrics,
			Eval: func(_ *health.Report, s *metrics.Snapshot) []Finding {
				var out []Finding
				for _, m := range s.Members {
					l := MemberLabels(uint64(m.ID), m.Name)
					switch {
					case m.Latency.Samples == 0:
						out = append(out, Finding{Labels: l, Missing: true})
					case m.Latency.P99 > t.RequestLatencyP99:
						out = append(out, Finding{Labels: l, Value: m.Latency.P99.Seconds(),
							Description: fmt.Sprintf("probe p99 %v over %d samples", m.Latency.P99, m.Latency.Samples)})
					}
				}
				return out
			}},
		{Name: "EtcdSplitBrain", Severity: Critical, For: 30 * time.Second, Summary: "etcd members disagree about the leader or the cluster",
			Needs: NeedsHealth,
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				if !h.SplitBrain.Detected {
					return nil
				}
				return []Finding{{Value: float64(h.SplitBrain.Term), Description: h.SplitBrain.Reason}}
			}},
		{Name: "EtcdRaftIndexLag", Severity: Warning, For: 2 * time.Minute, Summary: "etcd member lags the leader", Needs: NeedsHealth,
			Check: func(in *Input) []Finding {
				h := in.Health
				lead, ok := h.Member(h.Leader.ID)
				if !ok || !lead.Reachable {
					return nil
				}
				// The leader's applies per second over the last minute, when metrics tell,
				// else the health checker's rate between its last two checks; with neither
				// known yet while metrics come in, lagging members are unknown.
				rate, unknown := h.ApplyRate, false
				if in.Metrics != nil {
					ss := in.series(uint64(lead.Member.ID), time.Minute)
					if n, ok := increase(ss, func(m *metrics.MemberMetrics) float64 { return m.Raft.ProposalsApplied }); ok {
						rate = n / ss[len(ss)-1].t.Sub(ss[0].t).Seconds()
					} else if rate == 0 {
						unknown = true
					}
				}
				var out []Finding
				for _, m := range h.Members {
					if !m.Reachable || lead.RaftIndex <= m.RaftIndex {
						continue
					}
					lag := lead.RaftIndex - m.RaftIndex
					if unknown && lag > t.RaftIndexLag {
						out = append(out, Finding{Labels: healthMember(m), Missing: true})
						continue
					}
					behind := time.Duration(0)
					if rate > 0 {
						behind = time.Duration(float64(lag) / rate * float64(time.Second))
					}
					if lag > t.RaftIndexLag && (rate == 0 || behind > t.RaftLagBehind) {
						desc := fmt.Sprintf("raft index %d behind the leader", lag)
						if rate > 0 {
							desc += fmt.Sprintf(" (%v of the leader's applies)", behind.Round(time.Millisecond))
						}
						out = append(out, Finding{Labels: healthMember(m), Value: float64(lag), Description: desc})
					}
				}
				return out
			}},
		{Name: "EtcdAlarm", Severity: Critical, Summary: "etcd alarm raised", Needs: NeedsHealth,
			Eval: func(h *health.Report, _ *metrics.Snapshot) []Finding {
				var out []Finding
				for _, a := range h.Alarms {
					name := ""
					if m, ok := h.Member(a.MemberID); ok {
						name = m.Name
					}
					l := MemberLabels(uint64(a.MemberID), name)
					l["alarm"] = a.Type
					out = append(out, Finding{Labels: l, Description: fmt.Sprintf("alarm %s on member %s (%x)", a.Type, name, uint64(a.MemberID))})
				}
				return out
			}},
		{Name: "EtcdMetricsUnavailable", Severity: Warning, For: 5 * time.Minute, Summary: "etcd member's /metrics cannot be scraped",
			Needs: NeedsMetrics,
			Eval: func(_ *health.Report, s *metrics.Snapshot) []Finding {
				var out []Finding
				for _, m := range s.Members {
					if !m.Scraped {
						out = append(out, Finding{Labels: MemberLabels(uint64(m.ID), m.Name),
							Description: fmt.Sprintf("scrape of %s failed: %s", m.MetricsURL, m.Error)})
					}
				}
				return out
			}},
		perMember(Rule{Name: "EtcdDiskSpaceLow", Severity: Warning, For: 10 * time.Minute,
			Summary: "etcd member's data directory is running out of disk space"},
			func(_ *Input, m *metrics.MemberMetrics) (float64, bool, bool, string) {
				if !m.Disk.Exposed || m.Disk.Size <= 0 {
					return 0, false, true, ""
				}
				free := float64(m.Disk.Available) / float64(m.Disk.Size)
				return free, free < t.DiskFree, true, fmt.Sprintf("%.1f%% of %d bytes free", 100*free, m.Disk.Size)
			}),
	}
	for i := range rules {
		rules[i].RunbookURL = runbook(rules[i].Name)
		rules[i].Expr = promExpr(rules[i].Name, rules[i].Severity, t)
	}
	return rules
}

// promExpr is the PromQL of the built-in rule name at severity sev over etcd's own
// metrics, with the thresholds of t: what the rule's Go code computes, as the etcd mixin
// writes it where the mixin has the alert. A cluster is a job, as in the mixin. Empty
// when etcd exports nothing the condition can be computed from.
func promExpr(name string, sev Severity, t Thresholds) string {
	sel := "{" + EtcdSelector + "}"
	with := func(more string) string { return "{" + EtcdSelector + ", " + more + "}" }
	up := "up" + sel
	quorum := "(floor(count without (instance) (" + up + ") / 2) + 1)"
	reachable := "sum without (instance) (" + up + " == bool 1)"
	seeLeader := "sum without (instance) (etcd_server_has_leader" + sel + ")"
	n, d := promNumber, promDuration
	p99 := func(metric, limit string, by string) string {
		r := fmt.Sprintf("rate(%s[%s])", metric, d(t.HistogramWindow))
		if by != "" {
			r = fmt.Sprintf("sum without (%s) (%s)", by, r)
		}
		return fmt.Sprintf("histogram_quantile(0.99, %s) > %s", r, limit)
	}
	lag := fmt.Sprintf("(max without (instance) (etcd_server_proposals_committed_total%s) - on (job) group_right () etcd_server_proposals_committed_total%s)", sel, sel)
	switch name {
	case "EtcdClusterUnreachable":
		return fmt.Sprintf("count without (instance) (%s == 0) == count without (instance) (%s)", up, up)
	case "EtcdInsufficientMembers":
		return reachable + " < " + quorum
	case "EtcdNoLeader":
		return fmt.Sprintf("(%s >= %s) and (%s < %s)", reachable, quorum, seeLeader, quorum)
	case "EtcdMembersDown":
		return up + " == 0"
	case "EtcdMemberNoLeader":
		return fmt.Sprintf("etcd_server_has_leader%s == 0 and on (job) (%s >= %s)", sel, seeLeader, quorum)
	case "EtcdHighNumberOfLeaderChanges":
		return fmt.Sprintf("max without (instance) (increase(etcd_server_leader_changes_seen_total%s[%s])) >= %d", sel, d(t.LeaderChangesWindow), t.LeaderChanges)
	case "EtcdHighNumberOfFailedProposals":
		return fmt.Sprintf("increase(etcd_server_proposals_failed_total%s[%s]) > %s", sel, d(t.FailedProposalsWindow), n(t.FailedProposals))
	case "EtcdHighNumberOfFailedGRPCRequests":
		limit := t.GRPCFailedWarning
		if sev == Critical {
			limit = t.GRPCFailedCritical
		}
		by := "grpc_type, grpc_code, grpc_service, grpc_method"
		codes := ""
		for i, c := range failedGRPCCodes {
			if i > 0 {
				codes += "|"
			}
			codes += c
		}
		return fmt.Sprintf("sum without (%s) (rate(grpc_server_handled_total%s[%s]))\n/\nsum without (%s) (rate(grpc_server_handled_total%s[%s]))\n> %s",
			by, with(`grpc_type="unary", grpc_code=~"`+codes+`"`), d(t.GRPCWindow), by, with(`grpc_type="unary"`), d(t.GRPCWindow), n(limit))
	case "EtcdMemberCommunicationSlow":
		return p99("etcd_network_peer_round_trip_time_seconds_bucket"+sel, n(t.PeerRTTP99.Seconds()), "To")
	case "EtcdHighFsyncDurations":
		limit := t.FsyncP99
		if sev == Critical {
			limit = t.FsyncP99Critical
		}
		return p99("etcd_disk_wal_fsync_duration_seconds_bucket"+sel, n(limit.Seconds()), "")
	case "EtcdHighCommitDurations":
		return p99("etcd_disk_backend_commit_duration_seconds_bucket"+sel, n(t.CommitP99.Seconds()), "")
	case "EtcdHighNumberOfPendingProposals":
		return fmt.Sprintf("avg_over_time(etcd_server_proposals_pending%s[%s]) > %s", sel, d(t.HistogramWindow), n(t.ProposalsPending))
	case "EtcdDatabaseQuotaLowSpace":
		return fmt.Sprintf("etcd_mvcc_db_total_size_in_bytes%s / etcd_server_quota_backend_bytes%s > %s", sel, sel, n(t.QuotaUsed))
	case "EtcdExcessiveDatabaseGrowth":
		// At least GrowthMinSpan of samples: one older than that within the window.
		return fmt.Sprintf("predict_linear(etcd_mvcc_db_total_size_in_bytes%s[%s], %s) > etcd_server_quota_backend_bytes%s\nand count_over_time(etcd_mvcc_db_total_size_in_bytes%s[%s] offset %s)",
			sel, d(t.GrowthWindow), n(t.FillWithin.Seconds()), sel, sel, d(t.GrowthWindow-t.GrowthMinSpan), d(t.GrowthMinSpan))
	case "EtcdDatabaseHighFragmentationRatio":
		return fmt.Sprintf("etcd_mvcc_db_total_size_in_use_in_bytes%s / etcd_mvcc_db_total_size_in_bytes%s < %s\nand etcd_mvcc_db_total_size_in_use_in_bytes%s > %d",
			sel, sel, n(t.Fragmentation), sel, t.FragmentationMinInUse)
	case "EtcdHighRequestLatency":
		// The daemon probes; Prometheus sees etcd's own handling time (--metrics=extensive).
		return p99("grpc_server_handling_seconds_bucket"+with(`grpc_type="unary", grpc_method!="Defragment"`),
			n(t.RequestLatencyP99.Seconds()), "grpc_type, grpc_service, grpc_method")
	case "EtcdSplitBrain":
		// The part /metrics can tell: more than one member says it leads.
		return fmt.Sprintf("sum without (instance) (etcd_server_is_leader%s) > 1", sel)
	case "EtcdRaftIndexLag":
		return fmt.Sprintf("%s > %d\nand\n%s / on (job) group_left () max without (instance) (rate(etcd_server_proposals_applied_total%s[1m])) > %s",
			lag, t.RaftIndexLag, lag, sel, n(t.RaftLagBehind.Seconds()))
	case "EtcdDiskSpaceLow":
		return fmt.Sprintf("node_filesystem_avail_bytes%s / node_filesystem_size_bytes%s < %s", sel, sel, n(t.DiskFree))
	}
	// EtcdAlarm: etcd exports no alarm metric. EtcdMetricsUnavailable: in Prometheus a
	// failed scrape is up == 0, which EtcdMembersDown covers.
	return ""
}

// perMember builds a metrics rule evaluated for each member of the latest snapshot. A
// member that was not scraped, or whose window is too short (known false), yields a
// Missing finding, so its alert holds.
func perMember(r Rule, check func(in *Input, m *metrics.MemberMetrics) (v float64, firing, known bool, desc string)) Rule {
	r.Needs |= NeedsMetrics
	r.Check = func(in *Input) []Finding {
		var out []Finding
		for i := range in.Metrics.Members {
			m := &in.Metrics.Members[i]
			if !m.Scraped {
				out = append(out, Finding{Labels: MemberLabels(uint64(m.ID), m.Name), Missing: true})
				continue
			}
			v, firing, known, desc := check(in, m)
			switch {
			case !known:
				out = append(out, Finding{Labels: MemberLabels(uint64(m.ID), m.Name), Missing: true})
			case firing:
				out = append(out, Finding{Labels: MemberLabels(uint64(m.ID), m.Name), Value: v, Description: desc})
			}
		}
		return out
	}
	return r
}

func histRule(name string, sev Severity, summary string, limit, window time.Duration, what string,
	h func(*metrics.MemberMetrics) metrics.Histogram) Rule {
	return perMember(Rule{Name: name, Severity: sev, For: 10 * time.Minute, Summary: summary},
		func(in *Input, m *metrics.MemberMetrics) (float64, bool, bool, string) {
			ss := in.series(uint64(m.ID), window)
			p99, ok := windowQuantile(ss, 0.99, h)
			if !ok {
				// No observations in the window is known-quiet; too few samples is unknown.
				return 0, false, len(ss) >= 2, ""
			}
			return p99.Seconds(), p99 > limit, true, fmt.Sprintf("%s p99 %v over %v (threshold %v)", what, p99, window, limit)
		})
}

func grpcRule(t Thresholds, sev Severity, limit float64, forDur time.Duration) Rule {
	return perMember(Rule{Name: "EtcdHighNumberOfFailedGRPCRequests", Severity: sev, For: forDur,
		Summary: "etcd member fails many gRPC requests"},
		func(in *Input, m *metrics.MemberMetrics) (float64, bool, bool, string) {
			ss := in.series(uint64(m.ID), t.GRPCWindow)
			total, ok := increase(ss, func(m *metrics.MemberMetrics) float64 {
				var s float64
				for _, v := range m.GRPCHandled {
					s += v
				}
				return s
			})
			if !ok {
				return 0, false, false, ""
			}
			failed, _ := increase(ss, func(m *metrics.MemberMetrics) float64 {
				var s float64
				for _, c := range failedGRPCCodes {
					s += m.GRPCHandled[c]
				}
				return s
			})
			if total <= 0 {
				return 0, false, true, ""
			}
			r := failed / total
			return r, r > limit, true, fmt.Sprintf("%.2f%% of %.0f unary requests failed within %v", 100*r, total, t.GRPCWindow)
		})
}

type dbSize struct {
	labels             map[string]string
	size, inUse, quota int64
	missing            bool
}

// dbSizes prefers the snapshot's scraped sizes and falls back to the report's
// statuses; a member known to neither is missing.
func dbSizes(h *health.Report, s *metrics.Snapshot) []dbSize {
	var out []dbSize
	byID := map[uint64]int{}
	if s != nil {
		for _, m := range s.Members {
			byID[uint64(m.ID)] = len(out)
			out = append(out, dbSize{labels: MemberLabels(uint64(m.ID), m.Name), size: m.DB.Size, inUse: m.DB.InUse, quota: m.DB.Quota, missing: !m.Scraped})
		}
	}
	if h != nil {
		for _, m := range h.Members {
			id := uint64(m.Member.ID)
			d := dbSize{labels: healthMember(m), size: m.DBSize, inUse: m.DBSizeInUse, quota: m.DBSizeQuota, missing: !m.Reachable}
			if i, ok := byID[id]; ok {
				if out[i].missing && !d.missing {
					out[i] = d
				}
				continue
			}
			byID[id] = len(out)
			out = append(out, d)
		}
	}
	return out
}
