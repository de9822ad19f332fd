package bench_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func ExampleRunner_Run() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	r, err := bench.New(cli)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.Run(ctx, bench.Config{Workload: bench.Mixed, Connections: 2, Clients: 4, Ops: 500})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ops:", res.Ops, "failed:", res.Failures)
	fmt.Println("reads + writes:", res.Reads.Ops+res.Writes.Ops)
	var inBuckets int64
	for _, b := range res.Buckets {
		inBuckets += b.Count
	}
	fmt.Println("in buckets:", inBuckets)
	// Output:
	// ops: 500 failed: 0
	// reads + writes: 500
	// in buckets: 500
}

func ExampleSLO_Check() {
	res := &bench.Result{
		Workload: bench.Write,
		Writes:   &bench.KindStats{Throughput: 25000, Latency: bench.LatencyStats{P99: 150 * time.Millisecond}},
		Latency:  bench.LatencyStats{P99: 150 * time.Millisecond},
	}
	fmt.Print(bench.DefaultSLO().Check(res))
	// Output:
	// PASS write_throughput: 25000.00 ops/s (target 20000.00)
	// FAIL write_p99_latency: 150.00 ms (target 50.00)
	// FAIL p99_latency: 150.00 ms (target 100.00)
	// SLO: FAIL
}

func ExampleCompare() {
	dir, err := os.MkdirTemp("", "baseline")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "baseline.json")

	base := &bench.Result{Workload: bench.Write, Throughput: 10000, Latency: bench.LatencyStats{P50: time.Millisecond, P95: 4 * time.Millisecond, P99: 8 * time.Millisecond}}
	if err := bench.SaveBaseline(path, base); err != nil {
		fmt.Println(err)
		return
	}
	saved, err := bench.LoadBaseline(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	now := &bench.Result{Workload: bench.Write, Throughput: 8000, Latency: bench.LatencyStats{P50: time.Millisecond, P95: 4 * time.Millisecond, P99: 8 * time.Millisecond}}
	cmp, err := bench.Compare(saved, now, 0.1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("regressed:", cmp.Regressed, cmp.Regressions)
	// Output:
	// regressed: true [throughput]
}
