package bench_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// bareWrites is what bench is measured against: the same connections and clients,
// issuing the same puts in a plain loop with nothing recorded.
func bareWrites(ctx context.Context, conns []*clientv3.Client, clients, ops int, value string) (time.Duration, error) {
	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	for _, c := range conns {
		for range clients {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(ops) {
						return
					}
					if _, err := c.Put(ctx, fmt.Sprintf("/bare/%025d", i), value); err != nil {
						failed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return 0, fmt.Errorf("%d bare puts failed", n)
	}
	return time.Since(start), nil
}

// BenchmarkOverhead compares bench's write throughput with a bare clientv3 loop over the
// same number of connections and clients against the same etcd, alternating the two in
// one run. ratio = bench throughput / bare throughput.
func BenchmarkOverhead(b *testing.B) {
	const (
		connections = 10
		clients     = 10
		ops         = 5000
	)
	ctx := context.Background()
	cli, err := etcdtest.NewClient()
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	conns := make([]*clientv3.Client, connections)
	for i := range conns {
		if conns[i], err = etcdtest.NewClient(); err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	r, err := bench.New(cli)
	if err != nil {
		b.Fatal(err)
	}
	value := string(make([]byte, 256))
	var bareSecs, benchSecs float64
	for b.Loop() {
		d, err := bareWrites(ctx, conns, clients, ops, value)
		if err != nil {
			b.Fatal(err)
		}
		bareSecs += d.Seconds()
		res, err := r.Run(ctx, bench.Config{Workload: bench.Write, Connections: connections, Clients: clients, Ops: ops})
		if err != nil {
			b.Fatal(err)
		}
		if res.Failures > 0 {
			b.Fatalf("bench: %d failures: %v", res.Failures, res.Errors)
		}
		benchSecs += res.Elapsed.Seconds()
	}
	if _, err := cli.Delete(ctx, "/bare/", clientv3.WithPrefix()); err != nil {
		b.Fatal(err)
	}
	n := float64(b.N * ops)
	b.ReportMetric(n/bareSecs, "bare-ops/s")
	b.ReportMetric(n/benchSecs, "bench-ops/s")
	b.ReportMetric(bareSecs/benchSecs, "ratio")
}
