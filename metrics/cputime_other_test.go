//go:build !unix

package metrics_test

import "time"

// cpuTime is not measured here: BenchmarkCollectCPU reports 0.
func cpuTime() time.Duration { return 0 }

// ctxSwitches is not counted here: BenchmarkCollectCPU reports 0.
func ctxSwitches() int64 { return 0 }
