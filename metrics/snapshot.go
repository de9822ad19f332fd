package metrics

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Snapshot is the outcome of one Collect.
type Snapshot struct {
	Time     time.Time       `json:"time"`
	Duration time.Duration   `json:"duration"`
	Members  []MemberMetrics `json:"members"`
	// Latency is computed over every member's probe samples together.
	Latency Latency `json:"latency"`
	// Throughput is the sum of the members' request rates, in requests per second.
	Throughput float64 `json:"throughput"`
}

// ID is an etcd member ID. It is written as etcd and etcdctl write it: unpadded hex.
type ID uint64

// Hex returns the ID in unpadded hexadecimal.
func (id ID) Hex() string { return strconv.FormatUint(uint64(id), 16) }

// MarshalText writes the ID in unpadded hexadecimal.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.Hex()), nil }

// UnmarshalText reads an ID in hexadecimal.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 16, 64)
	if err != nil {
		return fmt.Errorf("metrics: member ID %q: %w", b, err)
	}
	*id = ID(v)
	return nil
}

// MemberMetrics is one member's entry in a Snapshot.
type MemberMetrics struct {
	ID         ID     `json:"id"`
	Name       string `json:"name"`
	Endpoint   string `json:"endpoint"`
	MetricsURL string `json:"metricsURL"`
	// Err joins the probe and scrape errors; nil when both succeeded.
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`
	// Scraped is true when /metrics was fetched and parsed.
	Scraped bool `json:"scraped"`
	// Interval is the time since this member's previous scrape; rates are over it. Zero
	// in the first snapshot of a member.
	Interval   time.Duration `json:"interval"`
	Latency    Latency       `json:"latency"`
	Throughput Throughput    `json:"throughput"`
	// Totals are the counters Throughput is computed from, cumulative since the member
	// started.
	Totals Totals `json:"totals"`
	DB     DB     `json:"db"`
	Raft   Raft   `json:"raft"`
	// WALFsync and BackendCommit are the disk latencies etcd records.
	WALFsync      Histogram `json:"walFsync"`
	BackendCommit Histogram `json:"backendCommit"`
	// PeerRTT is the round-trip time to the member's peers, all peers together.
	PeerRTT Histogram `json:"peerRTT"`
	// Watchers is the number of watchers, WatchStreams of watch streams, GRPCStreams of
	// open gRPC streams (started minus handled).
	Watchers     float64 `json:"watchers"`
	WatchStreams float64 `json:"watchStreams"`
	GRPCStreams  float64 `json:"grpcStreams"`
	// GRPCHandled is etcd's grpc_server_handled_total for unary calls, by grpc_code,
	// cumulative since the member started (rules take increases over windows of it).
	// The codes are gRPC's 17 names ("OK", "Unavailable", ...) and "Other", which counts
	// every other grpc_code value a member serves. Codes with no calls are left out:
	// read a missing code as 0.
	GRPCHandled map[string]float64 `json:"grpcHandled,omitempty"`
	Process     Process            `json:"process"`
	// Disk is the filesystem of the member's data directory, when its /metrics exposes
	// node_filesystem_avail_bytes and node_filesystem_size_bytes.
	Disk Disk `json:"disk"`
}

// Disk is the space of the filesystem holding a member's data directory.
type Disk struct {
	// Exposed is false when the member's /metrics carries no filesystem metrics.
	Exposed   bool  `json:"exposed"`
	Available int64 `json:"available"`
	Size      int64 `json:"size"`
}

// Latency summarises probe round trips (linearizable reads through one member).
type Latency struct {
	Samples int           `json:"samples"`
	Errors  int           `json:"errors"`
	P50     time.Duration `json:"p50"`
	P95     time.Duration `json:"p95"`
	P99     time.Duration `json:"p99"`
	Max     time.Duration `json:"max"`
}

// Throughput is a member's request rates, in operations per second.
type Throughput struct {
	// Requests counts every unary gRPC request the member handled.
	Requests float64 `json:"requests"`
	Puts     float64 `json:"puts"`
	Ranges   float64 `json:"ranges"`
	Txns     float64 `json:"txns"`
	Deletes  float64 `json:"deletes"`
}

// Totals are a member's request counters, cumulative since it started.
type Totals struct {
	// Requests counts every unary gRPC request the member handled.
	Requests float64 `json:"requests"`
	Puts     float64 `json:"puts"`
	Ranges   float64 `json:"ranges"`
	Txns     float64 `json:"txns"`
	Deletes  float64 `json:"deletes"`
}

// DB is a member's backend size.
type DB struct {
	Size  int64 `json:"size"`
	InUse int64 `json:"inUse"`
	// Quota is the backend quota (etcd's default 2 GiB when unset).
	Quota int64 `json:"quota"`
	// GrowthRate is the change of Size in bytes per second.
	GrowthRate float64 `json:"growthRate"`
}

// Raft is a member's consensus state.
type Raft struct {
	HasLeader bool `json:"hasLeader"`
	IsLeader  bool `json:"isLeader"`
	// LeaderChanges is how many leader changes the member has seen since it started.
	LeaderChanges float64 `json:"leaderChanges"`
	// ProposalsCommitted and ProposalsApplied are raft indexes (gauges), ProposalsPending
	// the proposals waiting to commit.
	ProposalsCommitted float64 `json:"proposalsCommitted"`
	ProposalsApplied   float64 `json:"proposalsApplied"`
	ProposalsPending   float64 `json:"proposalsPending"`
	// ProposalsFailed is the counter; ProposalsFailedRate its rate per second.
	ProposalsFailed     float64 `json:"proposalsFailed"`
	ProposalsFailedRate float64 `json:"proposalsFailedRate"`
}

// Histogram summarises a duration histogram etcd exports.
type Histogram struct {
	// Count is the number of observations summarised.
	Count uint64 `json:"count"`
	// Windowed is true when the summary covers only the observations since the previous
	// snapshot, false when it covers everything since the member started.
	Windowed bool          `json:"windowed"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	// Over16ms is the share (0..1) of observations slower than 16 ms.
	Over16ms float64 `json:"over16ms"`
	// Buckets are the cumulative buckets since the member started, sorted by upper
	// bound, +Inf last, and Total their count: subtract two snapshots' buckets (see
	// WindowQuantile) for a quantile over any window.
	Buckets []Bucket `json:"buckets,omitempty"`
	Total   uint64   `json:"total"`
	// Sum is the sum of all observations since the member started, in seconds.
	Sum float64 `json:"sum"`
}

// Bucket is one cumulative histogram bucket: Count observations at or below UpperBound.
type Bucket struct {
	UpperBound float64 `json:"le"`
	Count      uint64  `json:"count"`
}

// Process is the member process's resource use.
type Process struct {
	CPUSeconds float64 `json:"cpuSeconds"`
	// CPUUsage is CPU seconds per second (1.0 = one core busy) over the interval.
	CPUUsage float64 `json:"cpuUsage"`
	RSS      int64   `json:"rss"`
	OpenFDs  float64 `json:"openFDs"`
	MaxFDs   float64 `json:"maxFDs"`
}

// Member returns the entry of the member with the given ID.
func (s *Snapshot) Member(id uint64) (MemberMetrics, bool) {
	for _, m := range s.Members {
		if uint64(m.ID) == id {
			return m, true
		}
	}
	return MemberMetrics{}, false
}

type bucketJSON struct {
	UpperBound string `json:"le"`
	Count      uint64 `json:"count"`
}

// MarshalJSON writes the bound as Prometheus writes "le" ("+Inf" for the last bucket),
// since JSON has no infinity. It is written by hand: every stored snapshot carries
// dozens of buckets, and encoding/json's reflection per bucket was most of the cost of
// encoding one.
func (b Bucket) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 48)
	out = append(out, `{"le":"`...)
	out = strconv.AppendFloat(out, b.UpperBound, 'g', -1, 64) // digits, '.', 'e', '+', '-', Inf, NaN: nothing to escape
	out = append(out, `","count":`...)
	out = strconv.AppendUint(out, b.Count, 10)
	return append(out, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var j bucketJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	u, err := strconv.ParseFloat(j.UpperBound, 64)
	if err != nil {
		return fmt.Errorf("metrics: bucket bound %q: %w", j.UpperBound, err)
	}
	b.UpperBound, b.Count = u, j.Count
	return nil
}
