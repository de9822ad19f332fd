package store

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
)

// HealthCheck is one health check of one cluster, as history keeps it. A record of the
// same cluster and Time replaces the stored one.
type HealthCheck struct {
	// Time is when the check ran (in a downsampled read: the start of its step).
	Time    time.Time `json:"time"`
	Cluster string    `json:"cluster"`
	// Healthy is the check's verdict (in a downsampled read: every check of the step
	// was healthy).
	Healthy bool `json:"healthy"`
	// Values are the numbers to chart and roll up ("members_reachable", "leader_changes",
	// ...), names chosen by the caller. Non-finite values are dropped on write. In a
	// downsampled read they are the means over the step.
	Values map[string]float64 `json:"values,omitempty"`
	// Max holds the largest value of each name over the step; only in downsampled reads.
	Max map[string]float64 `json:"max,omitempty"`
	// Samples is how many checks the record stands for: 1 for a raw record.
	Samples int `json:"samples,omitempty"`
	// Data is the caller's full record (a health.Report). In a downsampled read it is the
	// Data of the step's last check while raw records of that step are kept, else nil.
	Data json.RawMessage `json:"data,omitempty"`
}

// MetricSnapshot is one metrics collection of one cluster, or of one of its members, as
// history keeps it. A record of the same cluster, member and Time replaces the stored one.
type MetricSnapshot struct {
	// Time is when the snapshot was taken (in a downsampled read: the start of its step).
	Time    time.Time `json:"time"`
	Cluster string    `json:"cluster"`
	// Member is the member the values are about; empty for values about the cluster.
	Member string `json:"member,omitempty"`
	// Values are the numbers to chart and roll up ("latency_p99_seconds",
	// "db_size_bytes", ...), names chosen by the caller. Non-finite values are dropped on
	// write. In a downsampled read they are the means over the step.
	Values map[string]float64 `json:"values,omitempty"`
	// Max holds the largest value of each name over the step; only in downsampled reads.
	Max map[string]float64 `json:"max,omitempty"`
	// Samples is how many snapshots the record stands for: 1 for a raw record.
	Samples int `json:"samples,omitempty"`
	// Data is the caller's full record (a metrics.Snapshot). In a downsampled read it is
	// the Data of the step's last snapshot while raw records of that step are kept, else nil.
	Data json.RawMessage `json:"data,omitempty"`
}

// HistoryQuery selects health checks or metric snapshots.
type HistoryQuery struct {
	// Cluster selects when not empty.
	Cluster string
	// Member selects metric snapshots of one member when not empty ("" selects every
	// member and the cluster's own records). Health checks ignore it.
	Member string
	// Since (inclusive) and Until (exclusive) bound Time; the zero time does not bound.
	// Any time is accepted: records are of 1970 to 2262 (see MaxRecordTime), so an Until
	// after that bounds nothing, and a Since before 1970 neither.
	Since, Until time.Time
	// Step, when positive, downsamples: one record per cluster, member and step, the
	// steps aligned on multiples of Step since the Unix epoch. A store that keeps rollups
	// answers from the coarsest one whose resolution divides Step. Zero returns the
	// records at the finest resolution kept for the range. At most MaxHistoryStep.
	Step time.Duration
	// Limit caps the number of records: the newest are kept and returned oldest first.
	// 0 means 100.
	Limit int
}

// MaintenanceOp is one maintenance operation (defragment, compact, snapshot, ...) and
// its outcome. A record of the same ID replaces the stored one.
type MaintenanceOp struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster,omitempty"`
	// Kind is the operation ("defragment", "compact", ...).
	Kind string `json:"kind"`
	// State is the caller's ("running", "succeeded", "failed", ...).
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Alert is the fingerprint of the alert the operation answers, if any.
	Alert  string `json:"alert,omitempty"`
	DryRun bool   `json:"dryRun,omitempty"`
	// Data is the caller's full record (steps, members, errors, ...).
	Data json.RawMessage `json:"data,omitempty"`
}

// MaintenanceQuery selects maintenance operations.
type MaintenanceQuery struct {
	// Cluster selects when not empty.
	Cluster string
	// Limit caps the number of operations (newest Started first); 0 means 100.
	Limit int
}

// sample is the shape HealthCheck and MetricSnapshot share, so implementations store,
// select and downsample both with one piece of code.
type sample struct {
	Time    time.Time          `json:"t"`
	Cluster string             `json:"c"`
	Member  string             `json:"m,omitempty"`
	Healthy bool               `json:"h,omitempty"`
	Values  map[string]float64 `json:"v,omitempty"`
	Max     map[string]float64 `json:"x,omitempty"`
	Samples int                `json:"n,omitempty"`
	Data    json.RawMessage    `json:"d,omitempty"`
}

func fromHealth(h HealthCheck) sample {
	return sample{Time: h.Time, Cluster: h.Cluster, Healthy: h.Healthy, Values: h.Values, Max: h.Max, Samples: h.Samples, Data: h.Data}
}

func (s sample) health() HealthCheck {
	return HealthCheck{Time: s.Time, Cluster: s.Cluster, Healthy: s.Healthy, Values: s.Values, Max: s.Max, Samples: s.Samples, Data: s.Data}
}

func fromMetric(m MetricSnapshot) sample {
	return sample{Time: m.Time, Cluster: m.Cluster, Member: m.Member, Values: m.Values, Max: m.Max, Samples: m.Samples, Data: m.Data}
}

func (s sample) metric() MetricSnapshot {
	return MetricSnapshot{Time: s.Time, Cluster: s.Cluster, Member: s.Member, Values: s.Values, Max: s.Max, Samples: s.Samples, Data: s.Data}
}

// MaxRecordTime is the latest time a health check or metric snapshot can have in the
// stores of this package: the last time whose nanoseconds since the Unix epoch fit in
// an int64 (2262-04-11), as the bbolt store keys records by them. Their Put methods
// refuse a later one with ErrInvalidArgument.
var MaxRecordTime = time.Unix(0, math.MaxInt64).UTC()

// MaxHistoryStep is the longest step a HistoryQuery can downsample by: a year, leap or
// not. Longer steps are refused rather than answered with one record for everything
// kept (the longest default retention is the PostgreSQL store's year of 1-hour rollups).
const MaxHistoryStep = 366 * 24 * time.Hour

// Validate reports whether h can be written: a time after the Unix epoch, a cluster, no
// empty value name. (The stores of this package also refuse a time after
// MaxRecordTime.)
func (h HealthCheck) Validate() error {
	return validSample("health check", h.Time, h.Cluster, h.Values)
}

// Validate reports whether m can be written: a time after the Unix epoch, a cluster, no
// empty value name. (The stores of this package also refuse a time after
// MaxRecordTime.)
func (m MetricSnapshot) Validate() error {
	return validSample("metric snapshot", m.Time, m.Cluster, m.Values)
}

func validSample(what string, t time.Time, cluster string, values map[string]float64) error {
	switch {
	case t.IsZero() || t.Before(time.Unix(0, 0)):
		return fmt.Errorf("%w: %s time %v is not after the Unix epoch", ErrInvalidArgument, what, t)
	case cluster == "":
		return fmt.Errorf("%w: %s cluster is empty", ErrInvalidArgument, what)
	}
	if _, ok := values[""]; ok {
		return fmt.Errorf("%w: %s values have an empty name", ErrInvalidArgument, what)
	}
	return nil
}

// FiniteValues returns values without its NaN and infinite entries (JSON has no
// representation for them), or nil when none is left.
func FiniteValues(values map[string]float64) map[string]float64 {
	var out map[string]float64
	for k, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if out == nil {
			out = make(map[string]float64, len(values))
		}
		out[k] = v
	}
	return out
}

// validSamples validates and normalises records before they are written: the time in
// UTC, non-finite values dropped, Samples 1, Max cleared. A time after MaxRecordTime is
// refused too.
func validSamples[T interface{ Validate() error }](in []T, conv func(T) sample) ([]sample, error) {
	out := make([]sample, 0, len(in))
	for i, r := range in {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%w (record %d)", err, i)
		}
		s := conv(r)
		if s.Time.After(MaxRecordTime) {
			return nil, fmt.Errorf("%w: time %v is after %v (record %d)", ErrInvalidArgument, s.Time, MaxRecordTime, i)
		}
		s.Time, s.Values, s.Max, s.Samples = s.Time.UTC(), FiniteValues(s.Values), nil, 1
		out = append(out, s)
	}
	return out, nil
}

// Validate reports whether q is usable: no negative step or limit, no step longer than
// MaxHistoryStep, Since before Until when both are set.
func (q HistoryQuery) Validate() error {
	switch {
	case q.Step < 0:
		return fmt.Errorf("%w: step %v is negative", ErrInvalidArgument, q.Step)
	case q.Step > MaxHistoryStep:
		return fmt.Errorf("%w: step %v is longer than %v (366 days)", ErrInvalidArgument, q.Step, MaxHistoryStep)
	case q.Limit < 0:
		return fmt.Errorf("%w: limit %d is negative", ErrInvalidArgument, q.Limit)
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until):
		return fmt.Errorf("%w: since %v is not before until %v", ErrInvalidArgument, q.Since, q.Until)
	}
	return nil
}

// EffectiveLimit is q's limit with the default applied.
func (q HistoryQuery) EffectiveLimit() int { return limitOr(q.Limit) }

// StepStart is the start of t's step, in UTC: steps are aligned on multiples of step
// since the Unix epoch (as PostgreSQL's date_bin with origin 1970-01-01 aligns them).
// It is exact for any time and any positive step; a step of zero or less returns t.
func StepStart(t time.Time, step time.Duration) time.Time {
	t = t.UTC() // also drops the monotonic reading: equal steps are equal map keys
	if step <= 0 {
		return t
	}
	// The remainder of t's nanoseconds since the epoch (sec*1e9 + nsec, which need not
	// fit in an int64) divided by step, in 128 bits: (sec mod step)*(1e9 mod step) + nsec.
	st := int64(step)
	sm := t.Unix() % st
	if sm < 0 {
		sm += st
	}
	hi, lo := bits.Mul64(uint64(sm), uint64(int64(time.Second)%st))
	lo, carry := bits.Add64(lo, uint64(t.Nanosecond()), 0)
	return t.Add(-time.Duration(bits.Rem64(hi+carry, lo, uint64(st))))
}

func (q HistoryQuery) inRange(t time.Time) bool {
	return (q.Since.IsZero() || !t.Before(q.Since)) && (q.Until.IsZero() || t.Before(q.Until))
}

// selectSamples applies q to samples of any order: range, member, downsampling, limit.
func selectSamples(all []sample, q HistoryQuery, members bool) []sample {
	all = slices.DeleteFunc(all, func(s sample) bool {
		return !q.inRange(s.Time) || (q.Cluster != "" && s.Cluster != q.Cluster) ||
			(members && q.Member != "" && s.Member != q.Member)
	})
	slices.SortFunc(all, func(a, b sample) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Member, b.Member))
	})
	if q.Step > 0 {
		all = downsample(all, q.Step)
	}
	if n := limitOr(q.Limit); len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// downsample merges time-ordered raw samples into one per cluster, member and step.
// Means and maxima are finite whatever the input: non-finite values are left out, and a
// mean is at least the least value and at most the greatest (see Mean).
func downsample(in []sample, step time.Duration) []sample {
	type key struct {
		at              time.Time
		cluster, member string
	}
	idx := map[key]int{}
	means := []map[string]*Mean{}
	var out []sample
	for _, s := range in {
		k := key{StepStart(s.Time, step), s.Cluster, s.Member}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, sample{Time: k.at, Cluster: s.Cluster, Member: s.Member, Healthy: true,
				Values: map[string]float64{}, Max: map[string]float64{}})
			means = append(means, map[string]*Mean{})
		}
		o := &out[i]
		n := max(s.Samples, 1)
		o.Samples += n
		o.Healthy = o.Healthy && s.Healthy
		o.Data = s.Data
		for name, v := range s.Values {
			if !finite(v) {
				continue
			}
			acc := means[i][name]
			if acc == nil {
				acc = &Mean{}
				means[i][name] = acc
			}
			acc.Add(v, float64(n))
			m := v
			if x, ok := s.Max[name]; ok && finite(x) {
				m = x
			}
			if cur, ok := o.Max[name]; !ok || m > cur {
				o.Max[name] = m
			}
		}
	}
	for i := range out {
		for name, acc := range means[i] {
			out[i].Values[name] = acc.Value()
		}
		if len(out[i].Values) == 0 {
			out[i].Values, out[i].Max = nil, nil
		}
	}
	slices.SortStableFunc(out, func(a, b sample) int { return a.Time.Compare(b.Time) })
	return out
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Mean is the weighted mean of finite values, computed so that it cannot overflow:
// values near math.MaxFloat64 sum past it (two of 1e308 make +Inf). The plain sum of
// value times weight is used while it is finite, so ordinary values get the same mean
// to the bit as sum/weight; when it overflows, the same sum of the values scaled by
// 2^-64 (exact, a power of two) is divided and scaled back. The result is clamped to
// the least and greatest value, which a mean lies between but rounding may step past.
// Stores that downsample in Go use it so that their means agree with DownsampleMetrics.
// The zero Mean is empty.
type Mean struct {
	sum, scaled, weight float64
	lo, hi              float64
}

const meanScale = 0x1p-64

// Add adds v with weight w (a positive number of samples). Non-finite values and
// weights other than positive finite ones are ignored.
func (m *Mean) Add(v, w float64) {
	if !finite(v) || !finite(w) || w <= 0 {
		return
	}
	if m.weight == 0 {
		m.lo, m.hi = v, v
	}
	m.lo, m.hi = min(m.lo, v), max(m.hi, v)
	m.sum += v * w
	m.scaled += v * meanScale * w
	m.weight += w
}

// Value returns the mean: finite, between the least and the greatest value added; 0
// when nothing was.
func (m *Mean) Value() float64 {
	if m.weight == 0 {
		return 0
	}
	avg := m.sum / m.weight
	if !finite(avg) {
		avg = m.scaled / m.weight / meanScale
	}
	if math.IsNaN(avg) {
		return m.hi
	}
	return min(max(avg, m.lo), m.hi)
}

func selectMaintenance(all []MaintenanceOp, q MaintenanceQuery) []MaintenanceOp {
	all = slices.DeleteFunc(all, func(op MaintenanceOp) bool { return q.Cluster != "" && op.Cluster != q.Cluster })
	slices.SortFunc(all, func(a, b MaintenanceOp) int { return cmp.Or(b.Started.Compare(a.Started), cmp.Compare(a.ID, b.ID)) })
	if n := limitOr(q.Limit); len(all) > n {
		all = all[:n]
	}
	return all
}

// Validate reports whether op can be written: it needs an ID.
func (op MaintenanceOp) Validate() error {
	if op.ID == "" {
		return fmt.Errorf("%w: maintenance op id is empty", ErrInvalidArgument)
	}
	return nil
}

// Validate reports whether q is usable: no negative limit.
func (q MaintenanceQuery) Validate() error {
	if q.Limit < 0 {
		return fmt.Errorf("%w: limit %d is negative", ErrInvalidArgument, q.Limit)
	}
	return nil
}

// DownsampleHealth merges health checks into one record per cluster and step, oldest
// first, as a downsampled HealthQuery returns them: Values are means weighted by
// Samples, Max the maxima, Healthy whether all were healthy, Data the last one's.
// Non-finite values are left out, and a mean never overflows (two values of 1e308 mean
// 1e308, not +Inf), so the records always encode as JSON. The input must be ordered
// by time.
func DownsampleHealth(in []HealthCheck, step time.Duration) []HealthCheck {
	return convert(downsample(convert(in, fromHealth), step), sample.health)
}

// DownsampleMetrics merges metric snapshots into one record per cluster, member and
// step, oldest first, as DownsampleHealth does. The input must be ordered by time.
func DownsampleMetrics(in []MetricSnapshot, step time.Duration) []MetricSnapshot {
	return convert(downsample(convert(in, fromMetric), step), sample.metric)
}
