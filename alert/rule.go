package alert

import (
	"strconv"
	"time"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// Needs says which inputs a rule cannot do without. When a needed input is missing
// from an evaluation, the rule is not run and its alerts keep their state.
type Needs int

// Inputs a rule may need.
const (
	NeedsHealth Needs = 1 << iota
	NeedsMetrics
)

// Rule turns health reports and metric snapshots into findings. Its alerts go pending
// when first found, fire once found for For, and resolve when no longer found (after
// KeepFiringFor), with Prometheus' semantics.
type Rule struct {
	// Name is the alert name, such as "EtcdNoLeader". Two rules may share a name when
	// their severities differ (a warning and a critical tier).
	Name     string
	Severity Severity
	// Summary is the one-line text of the alert.
	Summary string
	// For is how long a finding must persist before its alert fires (0: at once).
	For time.Duration
	// KeepFiringFor keeps a firing alert firing that long after its finding is gone, so
	// a flapping condition does not resolve and re-fire.
	KeepFiringFor time.Duration
	// RunbookURL is sent as the "runbook_url" annotation.
	RunbookURL string
	// Expr is the rule's condition in PromQL over etcd's own metrics, with the same
	// thresholds, for a Prometheus rule file (etcd-monitor rules). Its series selectors
	// hold the etcd mixin's EtcdSelector. Empty when etcd exports nothing the condition
	// can be computed from.
	Expr string
	// Needs lists the inputs without which the rule is not run (its alerts hold).
	Needs Needs
	// Eval returns one Finding per instance whose condition holds. Either input may be
	// nil unless Needs says otherwise. It runs on the evaluating goroutine and must not
	// block. Set Eval or Check.
	Eval func(h *health.Report, s *metrics.Snapshot) []Finding
	// Check is Eval with the history of snapshots, for rules over windows.
	Check func(in *Input) []Finding
}

// Input is what a rule's Check sees.
type Input struct {
	Cluster string
	// Time is the evaluation's time: the newest of Health.Time and Metrics.Time.
	Time    time.Time
	Health  *health.Report
	Metrics *metrics.Snapshot
	// History holds the cluster's snapshots, oldest first, ending with Metrics when it
	// is not nil: every snapshot within the longest of GRPCWindow, HistogramWindow and a
	// minute, plus a minute. (The built-in rules over longer windows read the counters
	// they need, kept apart.)
	History []*metrics.Snapshot

	// counters are the members' leader changes and failed proposals before History, of
	// every snapshot back to the longer of their windows plus a minute.
	counters []counterPoint
	// sizes are the members' database sizes before History, back to GrowthWindow plus a
	// minute, one point a minute, for EtcdExcessiveDatabaseGrowth.
	sizes []sizePoint
	// memo keeps the series the rules of one evaluation read, by member and window:
	// several rules read the same ones. Nil (no memo) in an Input not made by the Manager.
	memo map[seriesKey][]sample
}

// Finding is one instance of a rule's condition.
type Finding struct {
	Labels      map[string]string
	Value       float64
	Description string
	// Missing says the rule could not tell for this instance (its input is missing, as
	// when a member's /metrics failed): the alert with these labels keeps its state.
	Missing bool
}

// MemberLabels returns the labels of a per-member finding: "member_id" (the identity,
// in unpadded hex as etcd, etcdctl and the health package write it) and "member" (the
// name, shown to people).
func MemberLabels(id uint64, name string) map[string]string {
	return map[string]string{"member_id": strconv.FormatUint(id, 16), "member": name}
}

// EtcdSelector is the label matcher of etcd's series in Expr, the etcd mixin's default.
const EtcdSelector = `job=~".*etcd.*"`

// promDuration writes d as a PromQL duration ("15m", "4h", "90s").
func promDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// promNumber writes v as a PromQL number.
func promNumber(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// RunbookBase is where the built-in rules' runbooks are: one section of
// docs/runbooks.md per rule, whose anchor is the rule's name in lower case. The
// sections of the etcd mixin's alerts link the mixin's runbooks (MixinRunbookBase) too.
const (
	RunbookBase      = "https://github.com/etcd-monitor/etcd-monitor/blob/main/docs/runbooks.md#"
	MixinRunbookBase = "https://runbooks.prometheus-operator.dev/runbooks/etcd/"
)

func runbook(name string) string { return RunbookBase + lower(name) }

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Thresholds parameterise the default rules. Start from DefaultThresholds; YAML
// decoding does.
type Thresholds struct {
	// LeaderChanges within LeaderChangesWindow (etcd_server_leader_changes_seen_total's
	// increase) fire EtcdHighNumberOfLeaderChanges (mixin: 4 in 15m).
	LeaderChanges       int           `yaml:"leader_changes" json:"leader_changes"`
	LeaderChangesWindow time.Duration `yaml:"leader_changes_window" json:"leader_changes_window"`
	// FailedProposals within FailedProposalsWindow fire EtcdHighNumberOfFailedProposals
	// (5 in 15m).
	FailedProposals       float64       `yaml:"failed_proposals" json:"failed_proposals"`
	FailedProposalsWindow time.Duration `yaml:"failed_proposals_window" json:"failed_proposals_window"`
	// GRPCFailedWarning and GRPCFailedCritical are the shares (0..1) of unary gRPC
	// requests failing with a server-side code over GRPCWindow (mixin: 1%, 5% over 5m).
	GRPCFailedWarning  float64       `yaml:"grpc_failed_warning" json:"grpc_failed_warning"`
	GRPCFailedCritical float64       `yaml:"grpc_failed_critical" json:"grpc_failed_critical"`
	GRPCWindow         time.Duration `yaml:"grpc_window" json:"grpc_window"`
	// HistogramWindow is the window of the latency percentiles below (mixin: 5m).
	HistogramWindow time.Duration `yaml:"histogram_window" json:"histogram_window"`
	// PeerRTTP99 fires EtcdMemberCommunicationSlow (150ms).
	PeerRTTP99 time.Duration `yaml:"peer_rtt_p99" json:"peer_rtt_p99"`
	// FsyncP99 and FsyncP99Critical fire EtcdHighFsyncDurations (500ms, 1s); CommitP99
	// fires EtcdHighCommitDurations (250ms).
	FsyncP99         time.Duration `yaml:"fsync_p99" json:"fsync_p99"`
	FsyncP99Critical time.Duration `yaml:"fsync_p99_critical" json:"fsync_p99_critical"`
	CommitP99        time.Duration `yaml:"commit_p99" json:"commit_p99"`
	// ProposalsPending is the average of pending proposals over HistogramWindow that
	// fires EtcdHighNumberOfPendingProposals (5).
	ProposalsPending float64 `yaml:"proposals_pending" json:"proposals_pending"`
	// QuotaUsed is the DB size / quota ratio that fires EtcdDatabaseQuotaLowSpace (0.95).
	QuotaUsed float64 `yaml:"quota_used" json:"quota_used"`
	// FillWithin fires EtcdExcessiveDatabaseGrowth when a linear regression of the DB
	// size over GrowthWindow (at least GrowthMinSpan of samples) predicts the quota full
	// within it (4h, over 4h, at least 1h).
	FillWithin    time.Duration `yaml:"fill_within" json:"fill_within"`
	GrowthWindow  time.Duration `yaml:"growth_window" json:"growth_window"`
	GrowthMinSpan time.Duration `yaml:"growth_min_span" json:"growth_min_span"`
	// Fragmentation is the in-use / size ratio below which EtcdDatabaseHighFragmentationRatio
	// fires (0.5), for databases whose in-use size exceeds FragmentationMinInUse (100 MiB).
	Fragmentation         float64 `yaml:"fragmentation" json:"fragmentation"`
	FragmentationMinInUse int64   `yaml:"fragmentation_min_in_use" json:"fragmentation_min_in_use"`
	// RequestLatencyP99 fires EtcdHighRequestLatency on probe latency (150ms).
	RequestLatencyP99 time.Duration `yaml:"request_latency_p99" json:"request_latency_p99"`
	// RaftIndexLag and RaftLagBehind fire EtcdRaftIndexLag for a member whose raft
	// index trails the leader's by more than RaftIndexLag entries and, when the leader's
	// apply rate is known, by more than RaftLagBehind of its applies (1000, 5s).
	RaftIndexLag  uint64        `yaml:"raft_index_lag" json:"raft_index_lag"`
	RaftLagBehind time.Duration `yaml:"raft_lag_behind" json:"raft_lag_behind"`
	// DiskFree is the share of the data directory's filesystem left free below which
	// EtcdDiskSpaceLow fires, where members expose it (0.1).
	DiskFree float64 `yaml:"disk_free" json:"disk_free"`
}

// DefaultThresholds returns the thresholds of the etcd mixin where it has one.
func DefaultThresholds() Thresholds {
	return Thresholds{
		LeaderChanges:         4,
		LeaderChangesWindow:   15 * time.Minute,
		FailedProposals:       5,
		FailedProposalsWindow: 15 * time.Minute,
		GRPCFailedWarning:     0.01,
		GRPCFailedCritical:    0.05,
		GRPCWindow:            5 * time.Minute,
		HistogramWindow:       5 * time.Minute,
		PeerRTTP99:            150 * time.Millisecond,
		FsyncP99:              500 * time.Millisecond,
		FsyncP99Critical:      time.Second,
		CommitP99:             250 * time.Millisecond,
		ProposalsPending:      5,
		QuotaUsed:             0.95,
		FillWithin:            4 * time.Hour,
		GrowthWindow:          4 * time.Hour,
		GrowthMinSpan:         time.Hour,
		Fragmentation:         0.5,
		FragmentationMinInUse: 100 << 20,
		RequestLatencyP99:     150 * time.Millisecond,
		RaftIndexLag:          1000,
		RaftLagBehind:         5 * time.Second,
		DiskFree:              0.1,
	}
}

// maxWindow is the longest window a rule looks back over.
func (t Thresholds) maxWindow() time.Duration {
	return max(t.LeaderChangesWindow, t.FailedProposalsWindow, t.GRPCWindow, t.HistogramWindow, t.GrowthWindow)
}

// denseSpan is how far back the history keeps every snapshot: the longest window of the
// rules over histograms and gRPC codes (quantiles, failure ratios, the leader's apply rate
// over a minute) plus a minute. The rules over leader changes and failed proposals read
// further back the counters kept of every snapshot (counterSpan), and the growth
// regression the database sizes kept one point a minute (historyStep).
func (t Thresholds) denseSpan() time.Duration {
	return max(t.GRPCWindow, t.HistogramWindow, time.Minute) + time.Minute
}

// counterSpan is how far back the members' leader changes and failed proposals are kept.
func (t Thresholds) counterSpan() time.Duration {
	return max(t.LeaderChangesWindow, t.FailedProposalsWindow) + time.Minute
}

// Validate reports the first threshold out of range, naming its YAML field.
func (t Thresholds) Validate() error {
	bad := func(name string, v any, want string) error {
		return fieldErr(name, "%v out of range (want %s)", v, want)
	}
	pos := func(name string, d time.Duration) error {
		if d <= 0 {
			return bad(name, d, "a positive duration")
		}
		return nil
	}
	ratio := func(name string, v float64) error {
		if !(v > 0 && v < 1) {
			return bad(name, v, "(0, 1)")
		}
		return nil
	}
	if t.LeaderChanges < 1 {
		return bad("leader_changes", t.LeaderChanges, ">= 1")
	}
	if t.FailedProposals <= 0 {
		return bad("failed_proposals", t.FailedProposals, "> 0")
	}
	if t.ProposalsPending <= 0 {
		return bad("proposals_pending", t.ProposalsPending, "> 0")
	}
	if t.QuotaUsed <= 0 || t.QuotaUsed > 1 {
		return bad("quota_used", t.QuotaUsed, "(0, 1]")
	}
	if t.FragmentationMinInUse < 0 {
		return bad("fragmentation_min_in_use", t.FragmentationMinInUse, ">= 0")
	}
	if t.RaftIndexLag < 1 {
		return bad("raft_index_lag", t.RaftIndexLag, ">= 1")
	}
	if t.GRPCFailedCritical < t.GRPCFailedWarning {
		return bad("grpc_failed_critical", t.GRPCFailedCritical, ">= grpc_failed_warning")
	}
	if t.FsyncP99Critical < t.FsyncP99 {
		return bad("fsync_p99_critical", t.FsyncP99Critical, ">= fsync_p99")
	}
	if t.GrowthMinSpan > t.GrowthWindow {
		return bad("growth_min_span", t.GrowthMinSpan, "<= growth_window")
	}
	for _, c := range []struct {
		n string
		d time.Duration
	}{{"leader_changes_window", t.LeaderChangesWindow}, {"failed_proposals_window", t.FailedProposalsWindow},
		{"grpc_window", t.GRPCWindow}, {"histogram_window", t.HistogramWindow}, {"peer_rtt_p99", t.PeerRTTP99},
		{"fsync_p99", t.FsyncP99}, {"fsync_p99_critical", t.FsyncP99Critical}, {"commit_p99", t.CommitP99},
		{"fill_within", t.FillWithin}, {"growth_window", t.GrowthWindow}, {"growth_min_span", t.GrowthMinSpan},
		{"request_latency_p99", t.RequestLatencyP99}, {"raft_lag_behind", t.RaftLagBehind}} {
		if err := pos(c.n, c.d); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		n string
		v float64
	}{{"grpc_failed_warning", t.GRPCFailedWarning}, {"grpc_failed_critical", t.GRPCFailedCritical},
		{"fragmentation", t.Fragmentation}, {"disk_free", t.DiskFree}} {
		if err := ratio(c.n, c.v); err != nil {
			return err
		}
	}
	return nil
}
