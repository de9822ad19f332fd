package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SLO is a set of objectives a result must meet. A zero field disables its objective.
type SLO struct {
	// MinReadThroughput is the floor for successful reads per second; it applies to
	// workloads that read.
	MinReadThroughput float64 `json:"minReadThroughput" yaml:"minReadThroughput"`
	// MinWriteThroughput is the floor for successful writes per second; it applies to
	// workloads that write.
	MinWriteThroughput float64 `json:"minWriteThroughput" yaml:"minWriteThroughput"`
	// MaxP99 is the ceiling for the 99th percentile latency of all operations
	// (maxP99Seconds in JSON).
	MaxP99 time.Duration `json:"-" yaml:"maxP99"`
	// MaxWriteP99 and MaxReadP99 are the ceilings for the 99th percentile latency of
	// writes and of reads; each applies to workloads that issue that kind
	// (maxWriteP99Seconds, maxReadP99Seconds in JSON).
	MaxWriteP99 time.Duration `json:"-" yaml:"maxWriteP99"`
	MaxReadP99  time.Duration `json:"-" yaml:"maxReadP99"`
	// MaxErrorRate is the ceiling for failures / ops, between 0 and 1.
	MaxErrorRate float64 `json:"maxErrorRate" yaml:"maxErrorRate"`
}

// DefaultSLO returns the objectives of a healthy production cluster: 40,000 reads/s,
// 20,000 writes/s, write p99 under 50ms, read p99 under 20ms, and p99 of all operations
// under 100ms.
func DefaultSLO() SLO {
	return SLO{MinReadThroughput: 40000, MinWriteThroughput: 20000, MaxP99: 100 * time.Millisecond,
		MaxWriteP99: 50 * time.Millisecond, MaxReadP99: 20 * time.Millisecond}
}

type sloJSON struct {
	MinReadThroughput  float64 `json:"minReadThroughput,omitempty"`
	MinWriteThroughput float64 `json:"minWriteThroughput,omitempty"`
	MaxP99Seconds      float64 `json:"maxP99Seconds,omitempty"`
	MaxWriteP99Seconds float64 `json:"maxWriteP99Seconds,omitempty"`
	MaxReadP99Seconds  float64 `json:"maxReadP99Seconds,omitempty"`
	MaxErrorRate       float64 `json:"maxErrorRate,omitempty"`
}

// MarshalJSON writes the latency ceilings in seconds.
func (s SLO) MarshalJSON() ([]byte, error) {
	return json.Marshal(sloJSON{s.MinReadThroughput, s.MinWriteThroughput, secs(s.MaxP99), secs(s.MaxWriteP99), secs(s.MaxReadP99), s.MaxErrorRate})
}

// UnmarshalJSON reads what MarshalJSON writes; an unknown field is an error.
func (s *SLO) UnmarshalJSON(b []byte) error {
	var j sloJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	for name, v := range map[string]float64{"maxP99Seconds": j.MaxP99Seconds, "maxWriteP99Seconds": j.MaxWriteP99Seconds, "maxReadP99Seconds": j.MaxReadP99Seconds} {
		if v < 0 || v > 3600 {
			return fmt.Errorf("%s %v: want 0 to 3600", name, v)
		}
	}
	*s = SLO{j.MinReadThroughput, j.MinWriteThroughput, fromSecs(j.MaxP99Seconds), fromSecs(j.MaxWriteP99Seconds), fromSecs(j.MaxReadP99Seconds), j.MaxErrorRate}
	return nil
}

// Objective is one checked objective.
type Objective struct {
	Name string `json:"name"`
	// Target is the threshold and Actual the measured value, in Unit: "ops/s",
	// "seconds" or "ratio".
	Target float64 `json:"target"`
	Actual float64 `json:"actual"`
	Unit   string  `json:"unit"`
	Pass   bool    `json:"pass"`
}

func (o Objective) String() string {
	verdict := "PASS"
	if !o.Pass {
		verdict = "FAIL"
	}
	if o.Unit == "seconds" {
		// People read latencies in milliseconds.
		return fmt.Sprintf("%s %s: %.2f ms (target %.2f)", verdict, o.Name, o.Actual*1000, o.Target*1000)
	}
	return fmt.Sprintf("%s %s: %.2f %s (target %.2f)", verdict, o.Name, o.Actual, o.Unit, o.Target)
}

// SLOReport is the verdict on every objective that applies to a result.
type SLOReport struct {
	Pass       bool        `json:"pass"`
	Objectives []Objective `json:"objectives"`
}

func (r SLOReport) String() string {
	var b strings.Builder
	for _, o := range r.Objectives {
		b.WriteString(o.String())
		b.WriteByte('\n')
	}
	if r.Pass {
		b.WriteString("SLO: PASS\n")
	} else {
		b.WriteString("SLO: FAIL\n")
	}
	return b.String()
}

// Check measures r against the objectives. A throughput objective passes when the
// measured value is at least the floor; a latency or error objective passes when the
// measured value is at most the ceiling.
func (s SLO) Check(r *Result) SLOReport {
	rep := SLOReport{Pass: true}
	add := func(o Objective) {
		rep.Objectives = append(rep.Objectives, o)
		rep.Pass = rep.Pass && o.Pass
	}
	if s.MinReadThroughput > 0 && r.Reads != nil {
		add(Objective{Name: "read_throughput", Target: s.MinReadThroughput, Actual: r.Reads.Throughput, Unit: "ops/s", Pass: r.Reads.Throughput >= s.MinReadThroughput})
	}
	if s.MinWriteThroughput > 0 && r.Writes != nil {
		add(Objective{Name: "write_throughput", Target: s.MinWriteThroughput, Actual: r.Writes.Throughput, Unit: "ops/s", Pass: r.Writes.Throughput >= s.MinWriteThroughput})
	}
	if s.MaxWriteP99 > 0 && r.Writes != nil {
		add(Objective{Name: "write_p99_latency", Target: secs(s.MaxWriteP99), Actual: secs(r.Writes.Latency.P99), Unit: "seconds", Pass: r.Writes.Latency.P99 <= s.MaxWriteP99})
	}
	if s.MaxReadP99 > 0 && r.Reads != nil {
		add(Objective{Name: "read_p99_latency", Target: secs(s.MaxReadP99), Actual: secs(r.Reads.Latency.P99), Unit: "seconds", Pass: r.Reads.Latency.P99 <= s.MaxReadP99})
	}
	if s.MaxP99 > 0 {
		add(Objective{Name: "p99_latency", Target: secs(s.MaxP99), Actual: secs(r.Latency.P99), Unit: "seconds", Pass: r.Latency.P99 <= s.MaxP99})
	}
	if s.MaxErrorRate > 0 {
		rate := 0.0
		if r.Ops > 0 {
			rate = float64(r.Failures) / float64(r.Ops)
		}
		add(Objective{Name: "error_rate", Target: s.MaxErrorRate, Actual: rate, Unit: "ratio", Pass: rate <= s.MaxErrorRate})
	}
	return rep
}
