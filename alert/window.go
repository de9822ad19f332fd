package alert

import (
	"math"
	"slices"
	"time"

	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// sample is one scraped entry of a member in the history.
type sample struct {
	t time.Time
	m *metrics.MemberMetrics
}

type seriesKey struct {
	id     uint64
	window time.Duration
}

// series returns the scraped entries of member id in the snapshots no older than
// window before the newest, oldest first. The caller must not modify it.
func (in *Input) series(id uint64, window time.Duration) []sample {
	if len(in.History) == 0 {
		return nil
	}
	if in.memo == nil {
		return in.seriesOf(id, window)
	}
	k := seriesKey{id, window}
	ss, ok := in.memo[k]
	if !ok {
		ss = in.seriesOf(id, window)
		in.memo[k] = ss
	}
	return ss
}

func (in *Input) seriesOf(id uint64, window time.Duration) []sample {
	from := in.History[len(in.History)-1].Time.Add(-window)
	first, _ := slices.BinarySearchFunc(in.History, from, func(s *metrics.Snapshot, t time.Time) int { return s.Time.Compare(t) })
	out := make([]sample, 0, len(in.History)-first)
	for _, s := range in.History[first:] {
		for i := range s.Members {
			if m := &s.Members[i]; uint64(m.ID) == id && m.Scraped {
				out = append(out, sample{s.Time, m})
			}
		}
	}
	return out
}

// counterPoint is a snapshot older than History reduced to the counters the rules over
// longer windows read: the members scraped at t.
type counterPoint struct {
	t       time.Time
	members []memberCounters
}

type memberCounters struct {
	id metrics.ID
	v  [counters]float64
}

// counter names a kept counter.
type counter int

const (
	leaderChanges counter = iota
	proposalsFailed
	counters
)

func (c counter) of(m *metrics.MemberMetrics) float64 {
	if c == leaderChanges {
		return m.Raft.LeaderChanges
	}
	return m.Raft.ProposalsFailed
}

func countersOf(s *metrics.Snapshot) counterPoint {
	p := counterPoint{t: s.Time}
	for i := range s.Members {
		if m := &s.Members[i]; m.Scraped {
			p.members = append(p.members, memberCounters{id: m.ID, v: [counters]float64{leaderChanges.of(m), proposalsFailed.of(m)}})
		}
	}
	return p
}

// counterIncrease is increase over member id's counter c within window before the
// newest snapshot: the counters kept before History, then History's.
func (in *Input) counterIncrease(id metrics.ID, window time.Duration, c counter) (float64, bool) {
	if len(in.History) == 0 {
		return 0, false
	}
	from := in.History[len(in.History)-1].Time.Add(-window)
	vs := make([]float64, 0, len(in.counters)+len(in.History)) // at most a value each
	for _, p := range in.counters {
		if p.t.Before(from) {
			continue
		}
		for _, m := range p.members {
			if m.id == id {
				vs = append(vs, m.v[c])
			}
		}
	}
	for _, s := range in.series(uint64(id), window) {
		vs = append(vs, c.of(s.m))
	}
	return increaseOf(vs)
}

// sizePoint is a point of the history older than the short windows: the database sizes of
// the members scraped at t.
type sizePoint struct {
	t       time.Time
	members []memberSize
}

type memberSize struct {
	id   metrics.ID
	size int64
}

// point is a value at a time.
type point struct {
	t time.Time
	v float64
}

// dbSizeSeries returns the database sizes of member id no older than window before the
// newest snapshot, oldest first: one a minute before History, then History's.
func (in *Input) dbSizeSeries(id metrics.ID, window time.Duration) []point {
	if len(in.History) == 0 {
		return nil
	}
	from := in.History[len(in.History)-1].Time.Add(-window)
	out := make([]point, 0, len(in.sizes)+len(in.History)) // at most a point each
	for _, p := range in.sizes {
		if p.t.Before(from) {
			continue
		}
		for _, m := range p.members {
			if m.id == id {
				out = append(out, point{p.t, float64(m.size)})
			}
		}
	}
	for _, s := range in.series(uint64(id), window) {
		out = append(out, point{s.t, float64(s.m.DB.Size)})
	}
	return out
}

// historyStep is the spacing of the history older than the short windows: one point a
// minute of the clock, enough for a regression over hours.
const historyStep = time.Minute

// sameStep reports whether a and b fall in the same historyStep of the clock.
func sameStep(a, b time.Time) bool {
	return a.Truncate(historyStep).Equal(b.Truncate(historyStep))
}

// increase is the increase of a counter over the samples (increaseOf their values).
func increase(ss []sample, v func(*metrics.MemberMetrics) float64) (float64, bool) {
	vs := make([]float64, len(ss))
	for i, s := range ss {
		vs[i] = v(s.m)
	}
	return increaseOf(vs)
}

// increaseOf is the increase of a counter over its values, oldest first, counting a
// decrease as a reset (the counter restarted from zero), like Prometheus' increase
// without the extrapolation. ok is false with fewer than two values.
func increaseOf(vs []float64) (float64, bool) {
	if len(vs) < 2 {
		return 0, false
	}
	var total float64
	prev := vs[0]
	for _, cur := range vs[1:] {
		if cur < prev {
			total += cur
		} else {
			total += cur - prev
		}
		prev = cur
	}
	return total, true
}

// windowQuantile is the q-quantile of a histogram's observations over the samples:
// the buckets' increases between consecutive samples are summed, and a bucket that went
// down (the member restarted) counts from zero, like Prometheus' rate. ok is false with
// fewer than two samples or no observations.
func windowQuantile(ss []sample, q float64, h func(*metrics.MemberMetrics) metrics.Histogram) (time.Duration, bool) {
	if len(ss) < 2 {
		return 0, false
	}
	var sum []metrics.Bucket
	prev := h(ss[0].m)
	for _, s := range ss[1:] {
		cur := h(s.m)
		if sum == nil && len(cur.Buckets) > 0 {
			sum = make([]metrics.Bucket, len(cur.Buckets))
			for i, b := range cur.Buckets {
				sum[i].UpperBound = b.UpperBound
			}
		}
		if len(cur.Buckets) == len(sum) {
			reset := len(prev.Buckets) != len(cur.Buckets) || prev.Total > cur.Total
			for i, b := range cur.Buckets {
				if !reset && (prev.Buckets[i].UpperBound != b.UpperBound || prev.Buckets[i].Count > b.Count) {
					reset = true
				}
			}
			for i, b := range cur.Buckets {
				if reset {
					sum[i].Count += b.Count
				} else {
					sum[i].Count += b.Count - prev.Buckets[i].Count
				}
			}
		}
		prev = cur
	}
	if len(sum) == 0 || sum[len(sum)-1].Count == 0 {
		return 0, false
	}
	return durationOf(metrics.Quantile(q, sum)), true
}

// durationOf converts seconds to a Duration within [0, the longest Duration]: a
// histogram's bounds are what a member served.
func durationOf(s float64) time.Duration {
	switch d := s * float64(time.Second); {
	case !(d > 0): // NaN included
		return 0
	case d >= math.MaxInt64:
		return math.MaxInt64
	default:
		return time.Duration(d)
	}
}

// regression fits v = a + b*t over the samples by least squares and returns the value
// predicted ahead of the last sample. ok is false when the samples span less than
// minSpan.
//
// Each sample weighs the time it stands for: half the time to each neighbour, up to
// historyStep a side. The history keeps every sample of the last minutes but one a
// minute before, so unweighted the last minutes would count several times over; with
// evenly spaced samples all weigh alike, as in a plain fit, and a gap (failed scrapes)
// gives its neighbours no more than a minute each.
func regression(ss []point, minSpan, ahead time.Duration) (float64, float64, bool) {
	if len(ss) < 2 || ss[len(ss)-1].t.Sub(ss[0].t) < minSpan {
		return 0, 0, false
	}
	half := func(a, b time.Time) float64 { return min(b.Sub(a), 2*historyStep).Seconds() / 2 }
	t0 := ss[0].t
	var n, sx, sy, sxx, sxy float64
	for i, s := range ss {
		var w float64
		if i > 0 {
			w += half(ss[i-1].t, s.t)
		}
		if i < len(ss)-1 {
			w += half(s.t, ss[i+1].t)
		}
		x, y := s.t.Sub(t0).Seconds(), s.v
		n += w
		sx += w * x
		sy += w * y
		sxx += w * x * x
		sxy += w * x * y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, 0, false
	}
	slope := (n*sxy - sx*sy) / den
	icpt := (sy - slope*sx) / n
	at := ss[len(ss)-1].t.Add(ahead).Sub(t0).Seconds()
	return icpt + slope*at, slope, true
}
