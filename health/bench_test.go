package health_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/tests/v3/framework/integration"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// BenchmarkCheck3Members measures a full health check (status of every member, alarms,
// /livez and /readyz) of a 3-member in-process cluster, and reports its percentiles.
func BenchmarkCheck3Members(b *testing.B) {
	integration.BeforeTestExternal(b)
	c := integration.NewCluster(b, &integration.ClusterConfig{Size: 3})
	defer c.Terminate(b)
	c.WaitLeader(b)
	eps := map[string]string{}
	for _, m := range c.Members {
		eps[m.Name] = m.GRPCURL
	}
	cli := c.Client(0)
	ch, err := health.New(cli, health.WithEndpoints(eps))
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	ctx := context.Background()
	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		r, err := ch.Check(ctx)
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
		if !r.Healthy {
			b.Fatalf("unhealthy: %+v", r)
		}
	}
	reportPercentiles(b, took)
}

func reportPercentiles(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	at := func(q float64) float64 {
		i := min(int(q*float64(len(took))), len(took)-1)
		return float64(took[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
