package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// bucketBounds are the upper bounds of the latency buckets; the last bucket is open.
var bucketBounds = [...]time.Duration{
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond,
}

var bucketLabels = [...]string{"<1ms", "1-5ms", "5-10ms", "10-50ms", "50-100ms", "100-500ms", ">500ms"}

// Result is what a run measured. Ops = Successes + Failures always holds; latencies and
// buckets are of successful operations only.
type Result struct {
	Workload Workload  `json:"workload"`
	Config   Config    `json:"config"`
	Started  time.Time `json:"started"`
	// Elapsed is the time from the first operation issued to the last one finished
	// (elapsedSeconds in JSON).
	Elapsed   time.Duration `json:"-"`
	Ops       int64         `json:"ops"`
	Successes int64         `json:"successes"`
	Failures  int64         `json:"failures"`
	// Throughput is successful operations per second.
	Throughput float64      `json:"throughput"`
	Latency    LatencyStats `json:"latency"`
	// Buckets count successful operations by latency: <1ms, 1-5, 5-10, 10-50, 50-100,
	// 100-500, >500ms.
	Buckets []Bucket `json:"buckets"`
	// Errors counts failures by kind: etcd's error message, a gRPC code, or "timeout".
	Errors map[string]int64 `json:"errors,omitempty"`
	// Reads and Writes break the run down by kind of operation; each is nil when the
	// workload issues none of that kind.
	Reads  *KindStats `json:"reads,omitempty"`
	Writes *KindStats `json:"writes,omitempty"`
	// Stopped says why the run ended before its Ops or Duration: the quota guard
	// refused the next write. Empty when the run ended as configured.
	Stopped string `json:"stopped,omitempty"`
}

// KindStats are the counts and latencies of one kind of operation.
type KindStats struct {
	Ops        int64        `json:"ops"`
	Successes  int64        `json:"successes"`
	Failures   int64        `json:"failures"`
	Throughput float64      `json:"throughput"`
	Latency    LatencyStats `json:"latency"`
}

// LatencyStats summarise latencies. Min, Max, Mean and StdDev are exact; percentiles
// come from an HDR histogram with three significant digits. In JSON every field is in
// seconds, its name ending in "Seconds" (the module's one convention for durations).
type LatencyStats struct {
	Min    time.Duration
	Mean   time.Duration
	Max    time.Duration
	StdDev time.Duration
	P50    time.Duration
	P90    time.Duration
	P95    time.Duration
	P99    time.Duration
	P999   time.Duration
}

type latencyJSON struct {
	Min    float64 `json:"minSeconds"`
	Mean   float64 `json:"meanSeconds"`
	Max    float64 `json:"maxSeconds"`
	StdDev float64 `json:"stddevSeconds"`
	P50    float64 `json:"p50Seconds"`
	P90    float64 `json:"p90Seconds"`
	P95    float64 `json:"p95Seconds"`
	P99    float64 `json:"p99Seconds"`
	P999   float64 `json:"p999Seconds"`
}

// legacyLatencyJSON is how results saved before the seconds convention wrote latencies:
// milliseconds. Baselines saved then still load.
type legacyLatencyJSON struct {
	Min    *float64 `json:"minMs"`
	Mean   float64  `json:"meanMs"`
	Max    float64  `json:"maxMs"`
	StdDev float64  `json:"stddevMs"`
	P50    float64  `json:"p50Ms"`
	P90    float64  `json:"p90Ms"`
	P95    float64  `json:"p95Ms"`
	P99    float64  `json:"p99Ms"`
	P999   float64  `json:"p999Ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func fromMs(f float64) time.Duration {
	return time.Duration(math.Round(f * float64(time.Millisecond)))
}
func secs(d time.Duration) float64 { return d.Seconds() }
func fromSecs(f float64) time.Duration {
	return time.Duration(math.Round(f * float64(time.Second)))
}

// MarshalJSON writes the latencies in seconds.
func (l LatencyStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(latencyJSON{secs(l.Min), secs(l.Mean), secs(l.Max), secs(l.StdDev), secs(l.P50), secs(l.P90), secs(l.P95), secs(l.P99), secs(l.P999)})
}

// UnmarshalJSON reads what MarshalJSON writes, and the milliseconds of older results.
func (l *LatencyStats) UnmarshalJSON(b []byte) error {
	var old legacyLatencyJSON
	if err := json.Unmarshal(b, &old); err != nil {
		return err
	}
	if old.Min != nil {
		*l = LatencyStats{fromMs(*old.Min), fromMs(old.Mean), fromMs(old.Max), fromMs(old.StdDev), fromMs(old.P50), fromMs(old.P90), fromMs(old.P95), fromMs(old.P99), fromMs(old.P999)}
		return nil
	}
	var j latencyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*l = LatencyStats{fromSecs(j.Min), fromSecs(j.Mean), fromSecs(j.Max), fromSecs(j.StdDev), fromSecs(j.P50), fromSecs(j.P90), fromSecs(j.P95), fromSecs(j.P99), fromSecs(j.P999)}
	return nil
}

// Bucket counts operations whose latency is below Upper (and at or above the previous
// bucket's Upper); Upper is zero for the last, open bucket. In JSON Upper is
// upperSeconds, absent for the open bucket.
type Bucket struct {
	Label string        `json:"label"`
	Upper time.Duration `json:"-"`
	Count int64         `json:"count"`
}

type bucketJSON struct {
	Label        string  `json:"label"`
	UpperSeconds float64 `json:"upperSeconds,omitempty"`
	UpperNs      int64   `json:"upperNs,omitempty"` // read only: results saved before the seconds convention
	Count        int64   `json:"count"`
}

// MarshalJSON writes Upper in seconds.
func (b Bucket) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Label        string  `json:"label"`
		UpperSeconds float64 `json:"upperSeconds,omitempty"`
		Count        int64   `json:"count"`
	}{b.Label, secs(b.Upper), b.Count})
}

// UnmarshalJSON reads what MarshalJSON writes, and the nanoseconds of older results.
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var j bucketJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*b = Bucket{Label: j.Label, Upper: fromSecs(j.UpperSeconds), Count: j.Count}
	if j.UpperNs != 0 {
		b.Upper = time.Duration(j.UpperNs)
	}
	return nil
}

type resultAlias Result

type resultJSON struct {
	*resultAlias
	ElapsedSeconds float64 `json:"elapsedSeconds"`
}

// MarshalJSON writes Elapsed as elapsedSeconds.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{resultAlias: (*resultAlias)(&r), ElapsedSeconds: secs(r.Elapsed)})
}

// UnmarshalJSON reads what MarshalJSON writes, and the elapsedNs of older results.
func (r *Result) UnmarshalJSON(data []byte) error {
	var j struct {
		*resultAlias
		ElapsedSeconds float64 `json:"elapsedSeconds"`
		ElapsedNs      int64   `json:"elapsedNs"`
	}
	j.resultAlias = (*resultAlias)(r)
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	r.Elapsed = fromSecs(j.ElapsedSeconds)
	if j.ElapsedNs != 0 {
		r.Elapsed = time.Duration(j.ElapsedNs)
	}
	return nil
}

func merge(cfg Config, start time.Time, elapsed time.Duration, reads, writes *recorder) *Result {
	all := newRecorder()
	all.merge(reads)
	all.merge(writes)
	secs := max(elapsed.Seconds(), 1e-9)
	res := &Result{
		Workload:   cfg.Workload,
		Config:     cfg,
		Started:    start,
		Elapsed:    elapsed,
		Ops:        all.successes + all.failures,
		Successes:  all.successes,
		Failures:   all.failures,
		Throughput: float64(all.successes) / secs,
		Latency:    all.stats(),
		Errors:     all.errors,
	}
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	for i, label := range bucketLabels {
		b := Bucket{Label: label, Count: all.buckets[i]}
		if i < len(bucketBounds) {
			b.Upper = bucketBounds[i]
		}
		res.Buckets = append(res.Buckets, b)
	}
	kind := func(r *recorder) *KindStats {
		return &KindStats{Ops: r.successes + r.failures, Successes: r.successes, Failures: r.failures,
			Throughput: float64(r.successes) / secs, Latency: r.stats()}
	}
	if cfg.Workload.reads() {
		res.Reads = kind(reads)
	}
	if cfg.Workload.writes() {
		res.Writes = kind(writes)
	}
	return res
}

func (r *recorder) stats() LatencyStats {
	n := float64(r.successes)
	if n == 0 {
		return LatencyStats{}
	}
	mean := r.sum / n
	variance := max(r.sq/n-mean*mean, 0)
	q := func(p float64) time.Duration {
		return time.Duration(r.hist.ValueAtQuantile(p)) * time.Microsecond
	}
	return LatencyStats{
		Min:    r.min,
		Mean:   time.Duration(mean * float64(time.Second)),
		Max:    r.max,
		StdDev: time.Duration(math.Sqrt(variance) * float64(time.Second)),
		P50:    q(50),
		P90:    q(90),
		P95:    q(95),
		P99:    q(99),
		P999:   q(99.9),
	}
}

// WriteJSON writes r as indented JSON, for machines.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r as a report for people.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Workload:    %s (%d connections × %d clients)\n", r.Workload, r.Config.Connections, r.Config.Clients)
	fmt.Fprintf(&b, "Operations:  %d (%d ok, %d failed) in %v\n", r.Ops, r.Successes, r.Failures, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "Throughput:  %.1f ops/s\n", r.Throughput)
	if r.Stopped != "" {
		fmt.Fprintf(&b, "Stopped:     %s\n", r.Stopped)
	}
	l := r.Latency
	fmt.Fprintf(&b, "Latency:     min %v  mean %v  max %v  stddev %v\n", l.Min, l.Mean, l.Max, l.StdDev)
	fmt.Fprintf(&b, "Percentiles: p50 %v  p90 %v  p95 %v  p99 %v  p99.9 %v\n", l.P50, l.P90, l.P95, l.P99, l.P999)
	b.WriteString("Histogram:\n")
	for _, bk := range r.Buckets {
		pct := 0.0
		if r.Successes > 0 {
			pct = 100 * float64(bk.Count) / float64(r.Successes)
		}
		fmt.Fprintf(&b, "  %-10s %8d  %5.1f%%\n", bk.Label, bk.Count, pct)
	}
	if len(r.Errors) > 0 {
		b.WriteString("Errors:\n")
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(i, j int) bool {
			return r.Errors[kinds[i]] > r.Errors[kinds[j]] || (r.Errors[kinds[i]] == r.Errors[kinds[j]] && kinds[i] < kinds[j])
		})
		for _, k := range kinds {
			fmt.Fprintf(&b, "  %8d  %s\n", r.Errors[k], k)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
