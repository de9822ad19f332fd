package metrics

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxScrapeBytes bounds what is read from one /metrics response.
const maxScrapeBytes = 16 << 20

// over16ms is the fsync bound the share of slow fsyncs is measured against; etcd's disk
// histograms have a bucket boundary exactly there.
const over16ms = 0.016

// raw is what a scrape yields that the next scrape needs for rates and windows.
type raw struct {
	time            time.Time
	requests        float64
	puts, ranges    float64
	txns, deletes   float64
	dbSize          float64
	proposalsFailed float64
	cpu             float64
	fsync, commit   hist
	peer            hist
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	upper float64
	count uint64
}

// hist is a cumulative histogram, buckets sorted by upper bound, +Inf last.
type hist struct {
	buckets []bucket
	count   uint64
}

func scrape(ctx context.Context, hc *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, maxScrapeBytes))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	if _, ok := fams["etcd_server_has_leader"]; !ok {
		return nil, fmt.Errorf("parse %s: no etcd metrics (%d families)", url, len(fams))
	}
	return fams, nil
}

// fill sets m's scraped fields from fams and returns the raw values for the next
// scrape; prev is the member's previous raw values, or nil.
func fill(m *MemberMetrics, fams map[string]*dto.MetricFamily, now time.Time, prev *raw) *raw {
	r := &raw{
		time:            now,
		requests:        sum(fams["grpc_server_handled_total"], labelIs("grpc_type", "unary")),
		puts:            sum(fams["etcd_mvcc_put_total"], nil),
		ranges:          sum(fams["etcd_mvcc_range_total"], nil),
		txns:            sum(fams["etcd_mvcc_txn_total"], nil),
		deletes:         sum(fams["etcd_mvcc_delete_total"], nil),
		dbSize:          sum(fams["etcd_mvcc_db_total_size_in_bytes"], nil),
		proposalsFailed: sum(fams["etcd_server_proposals_failed_total"], nil),
		cpu:             sum(fams["process_cpu_seconds_total"], nil),
		fsync:           histogram(fams["etcd_disk_wal_fsync_duration_seconds"]),
		commit:          histogram(fams["etcd_disk_backend_commit_duration_seconds"]),
		peer:            histogram(fams["etcd_network_peer_round_trip_time_seconds"]),
	}
	m.Scraped = true
	m.DB = DB{
		Size:  int64(r.dbSize),
		InUse: int64(sum(fams["etcd_mvcc_db_total_size_in_use_in_bytes"], nil)),
		Quota: int64(sum(fams["etcd_server_quota_backend_bytes"], nil)),
	}
	m.Raft = Raft{
		HasLeader:          sum(fams["etcd_server_has_leader"], nil) > 0,
		IsLeader:           sum(fams["etcd_server_is_leader"], nil) > 0,
		LeaderChanges:      sum(fams["etcd_server_leader_changes_seen_total"], nil),
		ProposalsCommitted: sum(fams["etcd_server_proposals_committed_total"], nil),
		ProposalsApplied:   sum(fams["etcd_server_proposals_applied_total"], nil),
		ProposalsPending:   sum(fams["etcd_server_proposals_pending"], nil),
		ProposalsFailed:    r.proposalsFailed,
	}
	m.Watchers = sum(fams["etcd_debugging_mvcc_watcher_total"], nil)
	m.WatchStreams = sum(fams["etcd_debugging_mvcc_watch_stream_total"], nil)
	m.GRPCStreams = max(0, sum(fams["grpc_server_started_total"], labelIsNot("grpc_type", "unary"))-
		sum(fams["grpc_server_handled_total"], labelIsNot("grpc_type", "unary")))
	m.GRPCHandled = byLabel(fams["grpc_server_handled_total"], "grpc_code", labelIs("grpc_type", "unary"))
	if avail, ok := fams["node_filesystem_avail_bytes"]; ok {
		if size, ok := fams["node_filesystem_size_bytes"]; ok {
			m.Disk = Disk{Exposed: true, Available: int64(first(avail)), Size: int64(first(size))}
		}
	}
	m.Process = Process{
		CPUSeconds: r.cpu,
		RSS:        int64(sum(fams["process_resident_memory_bytes"], nil)),
		OpenFDs:    sum(fams["process_open_fds"], nil),
		MaxFDs:     sum(fams["process_max_fds"], nil),
	}

	var pf, pc, pp *hist
	if prev != nil {
		pf, pc, pp = &prev.fsync, &prev.commit, &prev.peer
		if dt := now.Sub(prev.time); dt > 0 {
			m.Interval = dt
			s := dt.Seconds()
			m.Throughput = Throughput{
				Requests: rate(prev.requests, r.requests, s),
				Puts:     rate(prev.puts, r.puts, s),
				Ranges:   rate(prev.ranges, r.ranges, s),
				Txns:     rate(prev.txns, r.txns, s),
				Deletes:  rate(prev.deletes, r.deletes, s),
			}
			m.DB.GrowthRate = (r.dbSize - prev.dbSize) / s
			m.Raft.ProposalsFailedRate = rate(prev.proposalsFailed, r.proposalsFailed, s)
			m.Process.CPUUsage = rate(prev.cpu, r.cpu, s)
		}
	}
	m.WALFsync = summarize(r.fsync, pf)
	m.BackendCommit = summarize(r.commit, pc)
	m.PeerRTT = summarize(r.peer, pp)
	return r
}

// byLabel sums a counter family's metrics that pass keep, by the value of one label.
func byLabel(f *dto.MetricFamily, name string, keep labelFilter) map[string]float64 {
	if f == nil {
		return nil
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		if keep != nil && !keep(m) {
			continue
		}
		out[label(m, name)] += m.GetCounter().GetValue() + m.GetUntyped().GetValue()
	}
	return out
}

// first returns the value of a gauge family's first metric (node_filesystem_* carries
// one series per mount; an exporter placed beside etcd exposes the data directory's).
func first(f *dto.MetricFamily) float64 {
	for _, m := range f.GetMetric() {
		return m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return 0
}

// Quantile returns the q-quantile (0..1) of cumulative buckets, interpolated within the
// bucket like Prometheus' histogram_quantile; 0 when there are no observations.
func Quantile(q float64, buckets []Bucket) float64 {
	h := hist{buckets: make([]bucket, len(buckets))}
	for i, b := range buckets {
		h.buckets[i] = bucket{upper: b.UpperBound, count: b.Count}
	}
	if len(buckets) > 0 {
		h.count = buckets[len(buckets)-1].Count
	}
	return quantile(h, q)
}

// WindowQuantile returns the q-quantile of the observations between two snapshots of
// one member's histogram (older first), and how many there were. A reset (a count that
// went down, as after a restart) counts newer's buckets from zero, like Prometheus'
// increase.
func WindowQuantile(q float64, older, newer Histogram) (float64, uint64) {
	d := newer.Buckets
	if len(older.Buckets) == len(newer.Buckets) && older.Total <= newer.Total {
		d = make([]Bucket, len(newer.Buckets))
		for i, b := range newer.Buckets {
			o := older.Buckets[i]
			if o.UpperBound != b.UpperBound || o.Count > b.Count {
				d = newer.Buckets
				break
			}
			d[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count - o.Count}
		}
	}
	if len(d) == 0 || d[len(d)-1].Count == 0 {
		return 0, 0
	}
	return Quantile(q, d), d[len(d)-1].Count
}

// rate is the per-second increase of a counter; a counter that went down was reset and
// yields 0 rather than a negative rate.
func rate(prev, cur, seconds float64) float64 {
	if cur < prev || seconds <= 0 {
		return 0
	}
	return (cur - prev) / seconds
}

type labelFilter func(*dto.Metric) bool

func labelIs(name, value string) labelFilter {
	return func(m *dto.Metric) bool { return label(m, name) == value }
}

func labelIsNot(name, value string) labelFilter {
	return func(m *dto.Metric) bool { return label(m, name) != value }
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// sum adds up the values of a counter, gauge or untyped family's metrics that pass keep.
func sum(f *dto.MetricFamily, keep labelFilter) float64 {
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.GetMetric() {
		if keep != nil && !keep(m) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total
}

// histogram merges a histogram family's metrics (all label sets) into one.
func histogram(f *dto.MetricFamily) hist {
	var h hist
	if f == nil {
		return h
	}
	byUpper := map[float64]uint64{}
	for _, m := range f.GetMetric() {
		hm := m.GetHistogram()
		if hm == nil {
			continue
		}
		h.count += hm.GetSampleCount()
		for _, b := range hm.GetBucket() {
			byUpper[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	for u, c := range byUpper {
		if !math.IsInf(u, +1) {
			h.buckets = append(h.buckets, bucket{upper: u, count: c})
		}
	}
	slices.SortFunc(h.buckets, func(a, b bucket) int {
		switch {
		case a.upper < b.upper:
			return -1
		case a.upper > b.upper:
			return 1
		}
		return 0
	})
	h.buckets = append(h.buckets, bucket{upper: math.Inf(+1), count: h.count})
	return h
}

// delta returns cur minus prev when prev is an earlier state of the same histogram.
func delta(cur hist, prev *hist) (hist, bool) {
	if prev == nil || prev.count >= cur.count || len(prev.buckets) != len(cur.buckets) {
		return hist{}, false
	}
	d := hist{count: cur.count - prev.count, buckets: make([]bucket, len(cur.buckets))}
	for i, b := range cur.buckets {
		p := prev.buckets[i]
		if p.upper != b.upper || p.count > b.count {
			return hist{}, false
		}
		d.buckets[i] = bucket{upper: b.upper, count: b.count - p.count}
	}
	return d, true
}

func summarize(cur hist, prev *hist) Histogram {
	h, windowed := delta(cur, prev)
	if !windowed {
		h = cur
	}
	if h.count == 0 {
		return Histogram{}
	}
	out := Histogram{Count: h.count, Windowed: windowed, P50: seconds(quantile(h, 0.5)), P99: seconds(quantile(h, 0.99))}
	out.Over16ms = 1 - float64(countAtOrBelow(h, over16ms))/float64(h.count)
	out.Total = cur.count
	out.Buckets = make([]Bucket, len(cur.buckets))
	for i, b := range cur.buckets {
		out.Buckets[i] = Bucket{UpperBound: b.upper, Count: b.count}
	}
	return out
}

// countAtOrBelow is the cumulative count of the first bucket whose bound is at least
// bound: exact when bound is a boundary, as 16 ms is in etcd's disk histograms.
func countAtOrBelow(h hist, bound float64) uint64 {
	for _, b := range h.buckets {
		if b.upper >= bound {
			return b.count
		}
	}
	return h.count
}

// quantile interpolates linearly within the bucket holding the q-th observation, like
// Prometheus' histogram_quantile; observations in the +Inf bucket yield the highest
// finite bound.
func quantile(h hist, q float64) float64 {
	if h.count == 0 || len(h.buckets) == 0 {
		return 0
	}
	rank := q * float64(h.count)
	var lower float64
	var below uint64
	for i, b := range h.buckets {
		if float64(b.count) >= rank && b.count > below {
			if math.IsInf(b.upper, +1) {
				if i == 0 {
					return 0
				}
				return h.buckets[i-1].upper
			}
			return lower + (b.upper-lower)*(rank-float64(below))/float64(b.count-below)
		}
		lower, below = b.upper, b.count
	}
	return lower
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
