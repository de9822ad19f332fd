package monitor

import (
	"strings"
	"time"
	"unicode"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// The API's own types. Every answer is built from them, never from the health and
// metrics packages' types directly, so that the wire format has one convention
// everywhere: every duration is a number of seconds (a float, fractions allowed) in a
// field whose name ends in "Seconds"; times are RFC 3339 strings; member and cluster IDs
// are hexadecimal strings as etcdctl prints them. The OpenAPI document
// (/api/v1/openapi.json) is generated from these types.

// seconds is a duration as the API writes it.
func seconds(d time.Duration) float64 { return d.Seconds() }

// maxProbeError bounds the text a member's failed probe contributes to an answer: a
// member that answers /readyz with a 4 KB HTML page must not fill the members table.
const maxProbeError = 200

// plain returns s on one line, without control characters, at most n bytes (cut at a
// rune boundary, with an ellipsis).
func plain(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Quorum describes the voting members.
type Quorum struct {
	// Size is the number of voters a quorum needs: voters/2+1.
	Size int `json:"size"`
	// Voters is the number of voting (non-learner) members.
	Voters int `json:"voters"`
	// Healthy is the number of reachable voters that see a leader.
	Healthy   int  `json:"healthy"`
	HasQuorum bool `json:"hasQuorum"`
	// FailuresTolerated is how many more voters may fail before quorum is lost (0 when
	// it is lost already).
	FailuresTolerated int `json:"failuresTolerated"`
}

func quorumOf(q health.Quorum) Quorum {
	return Quorum{Size: q.Size, Voters: q.Voters, Healthy: q.Healthy, HasQuorum: q.HasQuorum, FailuresTolerated: max(0, q.Healthy-q.Size)}
}

// Probe is the outcome of a member's HTTP health endpoint (/livez or /readyz).
type Probe struct {
	// Served is false when the member does not serve the endpoint.
	Served bool `json:"served"`
	// OK is true when the endpoint answered 200.
	OK         bool   `json:"ok"`
	StatusCode int    `json:"statusCode,omitempty"`
	Error      string `json:"error,omitempty"`
}

func probeOf(p health.Probe) Probe {
	return Probe{Served: p.Served, OK: p.OK, StatusCode: p.StatusCode, Error: plain(p.Error, maxProbeError)}
}

// Member is one member as the latest health check saw it.
type Member struct {
	ID         health.ID `json:"id"`
	Name       string    `json:"name"`
	Endpoint   string    `json:"endpoint"`
	PeerURLs   []string  `json:"peerURLs"`
	ClientURLs []string  `json:"clientURLs"`
	IsLearner  bool      `json:"isLearner"`
	// IsLeader is true for the member the cluster agrees is leader.
	IsLeader bool `json:"isLeader"`
	// Reachable is true when the member answered its status request; the fields from
	// Version to DBSizeQuota are zero when it did not.
	Reachable bool `json:"reachable"`
	// Error is why the member could not be probed.
	Error string `json:"error,omitempty"`
	// LatencySeconds is the round trip of the status request.
	LatencySeconds float64 `json:"latencySeconds"`
	Livez          Probe   `json:"livez"`
	Readyz         Probe   `json:"readyz"`
	Version        string  `json:"version"`
	// Leader is the leader this member sees ("0" for none).
	Leader           health.ID `json:"leader"`
	RaftTerm         uint64    `json:"raftTerm"`
	RaftIndex        uint64    `json:"raftIndex"`
	RaftAppliedIndex uint64    `json:"raftAppliedIndex"`
	// RaftIndexLag is how many raft entries the member trails the leader by, as both
	// answered this check (0 for the leader, and when either did not answer).
	RaftIndexLag uint64 `json:"raftIndexLag"`
	Revision     int64  `json:"revision"`
	DBSize       int64  `json:"dbSize"`
	DBSizeInUse  int64  `json:"dbSizeInUse"`
	DBSizeQuota  int64  `json:"dbSizeQuota"`
	// Alarms are the member's active alarms ("NOSPACE", "CORRUPT").
	Alarms []string `json:"alarms"`
	// EtcdErrors are the errors etcd itself reports about the member.
	EtcdErrors []string `json:"etcdErrors,omitempty"`
}

func membersOf(r *health.Report) []Member {
	var leaderIndex uint64
	if l, ok := r.Member(r.Leader.ID); ok && r.Leader.ID != 0 && l.Reachable {
		leaderIndex = l.RaftIndex
	}
	out := make([]Member, 0, len(r.Members))
	for _, m := range r.Members {
		out = append(out, memberOf(r, m, leaderIndex))
	}
	return out
}

func memberOf(r *health.Report, m health.MemberStatus, leaderIndex uint64) Member {
	w := Member{
		ID: m.Member.ID, Name: m.Name, Endpoint: m.Endpoint, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs,
		IsLearner: m.Member.IsLearner || m.Status.IsLearner, IsLeader: r.Leader.ID != 0 && m.Member.ID == r.Leader.ID,
		Reachable: m.Reachable, Error: plain(m.Error, 4*maxProbeError), LatencySeconds: seconds(m.Latency),
		Livez: probeOf(m.Livez), Readyz: probeOf(m.Readyz), Alarms: []string{},
	}
	if w.PeerURLs == nil {
		w.PeerURLs = []string{}
	}
	if w.ClientURLs == nil {
		w.ClientURLs = []string{}
	}
	if m.Reachable {
		s := m.Status
		w.Version, w.Leader, w.RaftTerm, w.RaftIndex, w.RaftAppliedIndex = s.Version, s.Leader, s.RaftTerm, s.RaftIndex, s.RaftAppliedIndex
		w.Revision, w.DBSize, w.DBSizeInUse, w.DBSizeQuota, w.EtcdErrors = s.Revision, s.DBSize, s.DBSizeInUse, s.DBSizeQuota, s.Errors
		if leaderIndex > s.RaftIndex {
			w.RaftIndexLag = leaderIndex - s.RaftIndex
		}
	}
	for _, a := range r.Alarms {
		if a.MemberID == m.Member.ID {
			w.Alarms = append(w.Alarms, a.Type)
		}
	}
	return w
}

// Latency summarises probe round trips, in seconds.
type Latency struct {
	Samples    int     `json:"samples"`
	Errors     int     `json:"errors"`
	P50Seconds float64 `json:"p50Seconds"`
	P95Seconds float64 `json:"p95Seconds"`
	P99Seconds float64 `json:"p99Seconds"`
	MaxSeconds float64 `json:"maxSeconds"`
}

func latencyOf(l metrics.Latency) Latency {
	return Latency{Samples: l.Samples, Errors: l.Errors, P50Seconds: seconds(l.P50), P95Seconds: seconds(l.P95),
		P99Seconds: seconds(l.P99), MaxSeconds: seconds(l.Max)}
}

// Histogram summarises a duration histogram etcd exports.
type Histogram struct {
	// Count is the number of observations summarised.
	Count uint64 `json:"count"`
	// Windowed is true when the summary covers only the observations since the previous
	// snapshot, false when it covers everything since the member started.
	Windowed   bool    `json:"windowed"`
	P50Seconds float64 `json:"p50Seconds"`
	P99Seconds float64 `json:"p99Seconds"`
	// Over16msRatio is the share (0..1) of observations slower than 16 ms.
	Over16msRatio float64 `json:"over16msRatio"`
	// Buckets are the cumulative buckets since the member started ("le" in seconds, as
	// Prometheus writes it, "+Inf" last), and Total their count.
	Buckets []metrics.Bucket `json:"buckets"`
	Total   uint64           `json:"total"`
}

func histogramOf(h metrics.Histogram) Histogram {
	b := h.Buckets
	if b == nil {
		b = []metrics.Bucket{}
	}
	return Histogram{Count: h.Count, Windowed: h.Windowed, P50Seconds: seconds(h.P50), P99Seconds: seconds(h.P99),
		Over16msRatio: h.Over16ms, Buckets: b, Total: h.Total}
}

// MemberMetrics is one member's entry in a MetricsSnapshot.
type MemberMetrics struct {
	ID         health.ID `json:"id"`
	Name       string    `json:"name"`
	Endpoint   string    `json:"endpoint"`
	MetricsURL string    `json:"metricsURL"`
	Error      string    `json:"error,omitempty"`
	// Scraped is true when /metrics was fetched and parsed.
	Scraped bool `json:"scraped"`
	// IntervalSeconds is the time since the member's previous scrape; rates are over it.
	IntervalSeconds float64            `json:"intervalSeconds"`
	Latency         Latency            `json:"latency"`
	Throughput      metrics.Throughput `json:"throughput"`
	DB              metrics.DB         `json:"db"`
	Raft            metrics.Raft       `json:"raft"`
	WALFsync        Histogram          `json:"walFsync"`
	BackendCommit   Histogram          `json:"backendCommit"`
	PeerRTT         Histogram          `json:"peerRTT"`
	Watchers        float64            `json:"watchers"`
	WatchStreams    float64            `json:"watchStreams"`
	GRPCStreams     float64            `json:"grpcStreams"`
	// GRPCHandled is etcd's grpc_server_handled_total for unary calls by grpc_code.
	GRPCHandled map[string]float64 `json:"grpcHandled"`
	Process     metrics.Process    `json:"process"`
	Disk        metrics.Disk       `json:"disk"`
}

// MetricsSnapshot is one metric collection. In a downsampled history from a store's
// rollups (?step= over old ranges) an entry stands for a step: Members is empty and
// Latency, Throughput and Summary are the step's means.
type MetricsSnapshot struct {
	Time            time.Time       `json:"time"`
	DurationSeconds float64         `json:"durationSeconds"`
	Members         []MemberMetrics `json:"members"`
	// Latency is over every member's probe samples together.
	Latency Latency `json:"latency"`
	// Throughput is the sum of the members' request rates, in requests per second.
	Throughput float64 `json:"throughput"`
	// Summary is what charts over the cluster need, the same at any range.
	Summary ClusterSummary `json:"summary"`
}

// ClusterSummary sums or takes the worst of the members' figures.
type ClusterSummary struct {
	// PutsPerSecond and RangesPerSecond are the members' write and read rates summed.
	PutsPerSecond   float64 `json:"putsPerSecond"`
	RangesPerSecond float64 `json:"rangesPerSecond"`
	// DBSizeMax is the largest member database, in bytes.
	DBSizeMax float64 `json:"dbSizeMax"`
	// WALFsyncP99SecondsMax is the slowest member's WAL fsync p99.
	WALFsyncP99SecondsMax float64 `json:"walFsyncP99SecondsMax"`
}

func summaryOf(s *metrics.Snapshot) ClusterSummary {
	var c ClusterSummary
	for _, m := range s.Members {
		c.PutsPerSecond += m.Throughput.Puts
		c.RangesPerSecond += m.Throughput.Ranges
		c.DBSizeMax = max(c.DBSizeMax, float64(m.DB.Size))
		c.WALFsyncP99SecondsMax = max(c.WALFsyncP99SecondsMax, seconds(m.WALFsync.P99))
	}
	return c
}

func snapshotOf(s *metrics.Snapshot) *MetricsSnapshot {
	if s == nil {
		return nil
	}
	w := &MetricsSnapshot{Time: s.Time, DurationSeconds: seconds(s.Duration), Members: make([]MemberMetrics, 0, len(s.Members)),
		Latency: latencyOf(s.Latency), Throughput: s.Throughput, Summary: summaryOf(s)}

	for _, m := range s.Members {
		g := m.GRPCHandled
		if g == nil {
			g = map[string]float64{}
		}
		w.Members = append(w.Members, MemberMetrics{
			ID: health.ID(m.ID), Name: m.Name, Endpoint: m.Endpoint, MetricsURL: m.MetricsURL, Error: plain(m.Error, 4*maxProbeError),
			Scraped: m.Scraped, IntervalSeconds: seconds(m.Interval), Latency: latencyOf(m.Latency), Throughput: m.Throughput,
			DB: m.DB, Raft: m.Raft, WALFsync: histogramOf(m.WALFsync), BackendCommit: histogramOf(m.BackendCommit),
			PeerRTT: histogramOf(m.PeerRTT), Watchers: m.Watchers, WatchStreams: m.WatchStreams, GRPCStreams: m.GRPCStreams,
			GRPCHandled: g, Process: m.Process, Disk: m.Disk,
		})
	}
	return w
}

// point is one entry of a metric history: a snapshot, and for one rebuilt from a
// store's rollup (no members to compute it from) its summary.
type point struct {
	snap    *metrics.Snapshot
	summary *ClusterSummary
}

func (p point) wire() *MetricsSnapshot {
	w := snapshotOf(p.snap)
	if p.summary != nil {
		w.Summary = *p.summary
	}
	return w
}

func points(snaps []*metrics.Snapshot) []point {
	out := make([]point, len(snaps))
	for i, s := range snaps {
		out[i] = point{snap: s}
	}
	return out
}
