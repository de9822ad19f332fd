package bench

import (
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
	// MaxP99 is the ceiling for the 99th percentile latency of all operations.
	MaxP99 time.Duration `json:"maxP99" yaml:"maxP99"`
	// MaxErrorRate is the ceiling for failures / ops, between 0 and 1.
	MaxErrorRate float64 `json:"maxErrorRate" yaml:"maxErrorRate"`
}

// DefaultSLO returns the objectives of a healthy production cluster: 40,000 reads/s,
// 20,000 writes/s, p99 under 100ms.
func DefaultSLO() SLO {
	return SLO{MinReadThroughput: 40000, MinWriteThroughput: 20000, MaxP99: 100 * time.Millisecond}
}

// Objective is one checked objective.
type Objective struct {
	Name string `json:"name"`
	// Target is the threshold and Actual the measured value, in Unit.
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
	if s.MaxP99 > 0 {
		add(Objective{Name: "p99_latency", Target: ms(s.MaxP99), Actual: ms(r.Latency.P99), Unit: "ms", Pass: r.Latency.P99 <= s.MaxP99})
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
