package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
)

// MaxScrapeBytes bounds what is read from one member's /metrics response; a larger
// body is an error (ErrTooLarge), never silently truncated.
const MaxScrapeBytes = 16 << 20

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
	sum     float64
	out     []Bucket // the buckets of the snapshot made from it, shared and never modified
}

// accept asks for the protobuf format, and the text format from a server (or a proxy)
// that does not serve it, as Prometheus does.
const accept = protoFormat + ";proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"

// scrape fetches and parses a member's /metrics (through the unix-socket client when
// unix is set). It asks for the protobuf format, in which the families the collector
// does not use (most of them) are skipped by their length rather than read line by line,
// and parses whichever format the response says it is in. It asks for no compression:
// on the networks members and monitors share, decompressing would cost the collector
// more CPU than the bytes it saves.
func scrape(ctx context.Context, hc *memberhttp.Clients, url string, unix bool) (p *parsed, size int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", "identity")
	err = hc.Do(req, unix, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if resp.ContentLength > MaxScrapeBytes {
			return fmt.Errorf("%w: GET %s: Content-Length %d over %d bytes", ErrTooLarge, url, resp.ContentLength, MaxScrapeBytes)
		}
		read, ferr := parser(resp.Header.Get("Content-Type"))
		if ferr != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("GET %s: %w", url, ferr)
		}
		cr := &countingReader{r: resp.Body}
		p, err = read(cr, MaxScrapeBytes)
		size = cr.n
		switch {
		case errors.Is(err, errTooLarge):
			return fmt.Errorf("%w: GET %s: over %d bytes", ErrTooLarge, url, MaxScrapeBytes)
		case err != nil:
			return fmt.Errorf("parse %s: %w", url, err)
		case !p.seen[sHasLeader]:
			return fmt.Errorf("parse %s: no etcd metrics (etcd_server_has_leader missing)", url)
		}
		return nil
	})
	if err != nil {
		return nil, size, err
	}
	return p, size, nil
}

// parser returns the parser of a response of Content-Type ct: the protobuf format's
// when ct says it is the delimited MetricFamily stream, the text format's otherwise
// (what a server that ignores Accept serves, whatever it says).
func parser(ct string) (func(io.Reader, int64) (*parsed, error), error) {
	if len(ct) < len(protoFormat) || !strings.EqualFold(ct[:len(protoFormat)], protoFormat) {
		return parse, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	switch {
	case err == nil && mt != protoFormat:
		return parse, nil
	case err != nil || params["proto"] != "io.prometheus.client.MetricFamily" || params["encoding"] != "delimited":
		return nil, fmt.Errorf("unsupported format %q", ct)
	}
	return parseProto, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// fill sets m's scraped fields from p and returns the raw values for the next scrape;
// prev is the member's previous raw values, or nil.
func fill(m *MemberMetrics, p *parsed, now time.Time, prev *raw) *raw {
	v := &p.vals
	r := &raw{
		time:            now,
		requests:        p.unary,
		puts:            v[sPuts],
		ranges:          v[sRanges],
		txns:            v[sTxns],
		deletes:         v[sDeletes],
		dbSize:          v[sDBSize],
		proposalsFailed: v[sFailed],
		cpu:             v[sCPU],
		fsync:           p.hists[hFsync].finish(),
		commit:          p.hists[hCommit].finish(),
		peer:            p.hists[hPeer].finish(),
	}
	m.Scraped = true
	m.Totals = Totals{Requests: r.requests, Puts: r.puts, Ranges: r.ranges, Txns: r.txns, Deletes: r.deletes}
	m.DB = DB{
		Size:  toInt64(r.dbSize),
		InUse: toInt64(v[sDBInUse]),
		Quota: toInt64(v[sQuota]),
	}
	m.Raft = Raft{
		HasLeader:          v[sHasLeader] > 0,
		IsLeader:           v[sIsLeader] > 0,
		LeaderChanges:      v[sLeaderChanges],
		ProposalsCommitted: v[sCommitted],
		ProposalsApplied:   v[sApplied],
		ProposalsPending:   v[sPending],
		ProposalsFailed:    r.proposalsFailed,
	}
	m.Watchers = v[sWatchers]
	m.WatchStreams = v[sWatchStreams]
	m.GRPCStreams = max(0, p.streamStarted-p.streamHandled)
	m.GRPCHandled = p.byCode()
	if p.seen[sFSAvail] && p.seen[sFSSize] {
		m.Disk = Disk{Exposed: true, Available: toInt64(v[sFSAvail]), Size: toInt64(v[sFSSize])}
	}
	m.Process = Process{
		CPUSeconds: r.cpu,
		RSS:        toInt64(v[sRSS]),
		OpenFDs:    v[sOpenFDs],
		MaxFDs:     v[sMaxFDs],
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
			m.DB.GrowthRate = finite((r.dbSize - prev.dbSize) / s)
			m.Raft.ProposalsFailedRate = rate(prev.proposalsFailed, r.proposalsFailed, s)
			m.Process.CPUUsage = rate(prev.cpu, r.cpu, s)
		}
	}
	m.WALFsync = summarize(&r.fsync, pf)
	m.BackendCommit = summarize(&r.commit, pc)
	m.PeerRTT = summarize(&r.peer, pp)
	return r
}

// finite returns v, or 0 when v is NaN or infinite (sums and differences of huge finite
// values a hostile member may serve).
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// toInt64 converts a byte count, clamping values out of int64's range.
func toInt64(v float64) int64 {
	switch {
	case v >= math.MaxInt64:
		return math.MaxInt64
	case v <= math.MinInt64:
		return math.MinInt64
	}
	return int64(v)
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
	return finite((cur - prev) / seconds)
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

// summarize describes cur, over the window since prev when prev is an earlier state of
// it. Its buckets are those of prev's summary when nothing changed: a history of an idle
// member then holds one copy of them, not one per snapshot.
func summarize(cur *hist, prev *hist) Histogram {
	h, windowed := delta(*cur, prev)
	if !windowed {
		h = *cur
	}
	if h.count == 0 {
		return Histogram{}
	}
	out := Histogram{Count: h.count, Windowed: windowed, P50: seconds(quantile(h, 0.5)), P99: seconds(quantile(h, 0.99))}
	out.Over16ms = 1 - float64(countAtOrBelow(h, over16ms))/float64(h.count)
	out.Total = cur.count
	out.Sum = finite(cur.sum)
	if prev != nil && sameBuckets(cur.buckets, prev.out) {
		out.Buckets = prev.out
	} else {
		out.Buckets = make([]Bucket, len(cur.buckets))
		for i, b := range cur.buckets {
			out.Buckets[i] = Bucket{UpperBound: b.upper, Count: b.count}
		}
	}
	cur.out = out.Buckets
	return out
}

func sameBuckets(a []bucket, b []Bucket) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].upper != b[i].UpperBound || a[i].count != b[i].Count {
			return false
		}
	}
	return true
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
