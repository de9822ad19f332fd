package metrics_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/tests/v3/framework/integration"

	"github.com/etcd-monitor/etcd-monitor/metrics"
)

func benchCluster(b *testing.B) (*integration.Cluster, map[string]string) {
	integration.BeforeTestExternal(b)
	c := integration.NewCluster(b, &integration.ClusterConfig{Size: 3})
	b.Cleanup(func() { c.Terminate(b) })
	c.WaitLeader(b)
	eps := map[string]string{}
	for _, m := range c.Members {
		eps[m.Name] = m.GRPCURL
	}
	return c, eps
}

// BenchmarkCollect3Members measures a full collection (10 probes and a /metrics scrape
// per member) of a 3-member in-process cluster.
func BenchmarkCollect3Members(b *testing.B) {
	c, eps := benchCluster(b)
	col, err := metrics.New(c.Client(0), metrics.WithEndpoints(eps))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := col.Collect(ctx)
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
		for _, m := range s.Members {
			if m.Err != nil {
				b.Fatal(m.Err)
			}
		}
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*95/100])/float64(time.Millisecond), "p95-ms")
}

// BenchmarkHistory1000 fills a history of 1000 snapshots of a 3-member cluster and
// reports the heap it holds.
func BenchmarkHistory1000(b *testing.B) {
	c, eps := benchCluster(b)
	ctx := context.Background()
	for b.Loop() {
		col, err := metrics.New(c.Client(0), metrics.WithEndpoints(eps), metrics.WithSamples(1))
		if err != nil {
			b.Fatal(err)
		}
		before := heap()
		for range metrics.DefaultHistorySize {
			if _, err := col.Collect(ctx); err != nil {
				b.Fatal(err)
			}
		}
		after := heap()
		if n := len(col.History()); n != metrics.DefaultHistorySize {
			b.Fatalf("history holds %d", n)
		}
		b.ReportMetric(float64(after-before)/(1<<20), "MiB-per-1000-snapshots")
		b.ReportMetric(float64(after-before)/metrics.DefaultHistorySize, "B-per-snapshot")
		runtime.KeepAlive(col)
	}
}

func heap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
