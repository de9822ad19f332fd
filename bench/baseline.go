package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// SaveBaseline writes r to path as JSON, for a later Compare.
func SaveBaseline(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: save baseline: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: save baseline: %w", err)
	}
	return nil
}

// LoadBaseline reads a result saved by SaveBaseline.
func LoadBaseline(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: load baseline: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: load baseline %s: %w", path, err)
	}
	if r.Workload == "" {
		return nil, fmt.Errorf("bench: load baseline %s: no workload: not a benchmark result", path)
	}
	return &r, nil
}

// Delta is how one metric moved from the baseline.
type Delta struct {
	Name     string  `json:"name"`
	Baseline float64 `json:"baseline"`
	Current  float64 `json:"current"`
	// Change is (Current - Baseline) / Baseline: +0.1 is 10% higher.
	Change float64 `json:"change"`
	// Regression is set when the metric got worse by more than the tolerance: lower
	// throughput, higher latency.
	Regression bool `json:"regression"`
}

// Comparison is the result of Compare.
type Comparison struct {
	Tolerance   float64  `json:"tolerance"`
	Regressed   bool     `json:"regressed"`
	Deltas      []Delta  `json:"deltas"`
	Regressions []string `json:"regressions,omitempty"`
}

func (c Comparison) String() string {
	var b strings.Builder
	for _, d := range c.Deltas {
		mark := "ok"
		if d.Regression {
			mark = "REGRESSION"
		}
		fmt.Fprintf(&b, "%-16s %12.2f -> %12.2f  %+6.1f%%  %s\n", d.Name, d.Baseline, d.Current, 100*d.Change, mark)
	}
	return b.String()
}

// Compare measures current against baseline: throughput lower, or p50/p95/p99 latency
// higher, by more than tolerance (0.1 = 10%) is a regression. Results of different
// workloads do not compare (ErrMismatch).
func Compare(baseline, current *Result, tolerance float64) (Comparison, error) {
	if baseline == nil || current == nil {
		return Comparison{}, fmt.Errorf("bench: compare: nil result")
	}
	if tolerance < 0 {
		return Comparison{}, &ConfigError{Field: "tolerance", Reason: fmt.Sprintf("must not be negative, got %v", tolerance)}
	}
	if baseline.Workload != current.Workload {
		return Comparison{}, fmt.Errorf("%w: baseline %s, current %s", ErrMismatch, baseline.Workload, current.Workload)
	}
	c := Comparison{Tolerance: tolerance}
	add := func(name string, base, cur float64, higherIsBetter bool) {
		d := Delta{Name: name, Baseline: base, Current: cur}
		if base != 0 {
			d.Change = (cur - base) / base
		}
		if higherIsBetter {
			d.Regression = d.Change < -tolerance
		} else {
			d.Regression = d.Change > tolerance
		}
		if d.Regression {
			c.Regressed = true
			c.Regressions = append(c.Regressions, name)
		}
		c.Deltas = append(c.Deltas, d)
	}
	add("throughput", baseline.Throughput, current.Throughput, true)
	add("p50", ms(baseline.Latency.P50), ms(current.Latency.P50), false)
	add("p95", ms(baseline.Latency.P95), ms(current.Latency.P95), false)
	add("p99", ms(baseline.Latency.P99), ms(current.Latency.P99), false)
	return c, nil
}
