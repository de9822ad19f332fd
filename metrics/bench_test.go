package metrics_test

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/tests/v3/framework/integration"
	"go.uber.org/zap"

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
	defer col.Close()
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
		col.Close()
	}
}

func heap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkCollectCPU reports the CPU time (user + system, of the whole process) one
// member's collection costs at the defaults: 10 probes and a /metrics scrape, through
// the connections a Collector keeps. With ETCD_MONITOR_BENCH_ENDPOINTS (comma-separated
// client URLs of a real cluster, e.g. 127.0.0.1:30000,127.0.0.1:30001,127.0.0.1:30002)
// that is the collector's cost alone; without it the members are in-process and their
// own work serving the probes and /metrics is counted too.
func BenchmarkCollectCPU(b *testing.B) {
	var cli *clientv3.Client
	var opts []metrics.Option
	if eps := os.Getenv("ETCD_MONITOR_BENCH_ENDPOINTS"); eps != "" {
		var err error
		cli, err = clientv3.New(clientv3.Config{Endpoints: strings.Split(eps, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		defer cli.Close()
	} else {
		c, eps := benchCluster(b)
		cli = c.Client(0)
		opts = append(opts, metrics.WithEndpoints(eps))
	}
	col, err := metrics.New(cli, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer col.Close()
	ctx := context.Background()
	// The first collection connects; the next few still cost more than the later ones
	// (about 1.6 times), so the clock starts after three.
	for range 3 {
		if _, err := col.Collect(ctx); err != nil {
			b.Fatal(err)
		}
	}
	members := 0
	var per []float64 // CPU µs per member, each collection
	t0, sw0 := cpuTime(), ctxSwitches()
	for b.Loop() {
		c0 := cpuTime()
		s, err := col.Collect(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range s.Members {
			if m.Err != nil {
				b.Fatal(m.Err)
			}
		}
		members += len(s.Members)
		per = append(per, float64(cpuTime()-c0)/float64(time.Microsecond)/float64(len(s.Members)))
	}
	slices.Sort(per)
	b.ReportMetric(float64(cpuTime()-t0)/float64(time.Microsecond)/float64(members), "cpu-µs/member-collection")
	b.ReportMetric(per[len(per)/2], "median-cpu-µs/member-collection")
	// On a loaded machine each switch costs tens of µs of CPU (cold caches, thread
	// wake-ups): compare figures only at similar switches per member.
	b.ReportMetric(float64(ctxSwitches()-sw0)/float64(members), "ctxsw/member-collection")
}
