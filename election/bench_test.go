package election_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/tests/v3/framework/integration"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/election"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// benchCluster starts a 3-node in-process cluster for a benchmark (the integration
// framework takes a *testing.B as well as a *testing.T).
func benchCluster(b *testing.B) *integration.Cluster {
	b.Helper()
	integration.BeforeTestExternal(b)
	c := integration.NewCluster(b, &integration.ClusterConfig{Size: 3})
	b.Cleanup(func() { c.Terminate(b) })
	c.WaitLeader(b)
	return c
}

func benchClient(b *testing.B, endpoints ...string) *clientv3.Client {
	b.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkFailoverResign measures, on a 3-node cluster, the time from a leader's
// Resign to the standby's Campaign returning.
func BenchmarkFailoverResign(b *testing.B) {
	c := benchCluster(b)
	ctx := context.Background()
	pfx := etcdtest.Prefix(b) + "e"
	cands := make([]*election.Candidate, 2)
	for i := range cands {
		cand, err := election.New(benchClient(b, c.Members[i].GRPCURL), pfx, fmt.Sprintf("c%d", i))
		if err != nil {
			b.Fatal(err)
		}
		defer cand.Close()
		cands[i] = cand
	}
	if err := cands[0].Campaign(ctx); err != nil {
		b.Fatal(err)
	}
	leader := 0
	var took []time.Duration
	for b.Loop() {
		standby := cands[1-leader]
		got := make(chan error, 1)
		go func() { got <- standby.Campaign(ctx) }()
		// Wait until the standby is queued behind the leader.
		for {
			r, err := cands[leader].Leader(ctx)
			if err != nil {
				b.Fatal(err)
			}
			k, err := c.Client(0).Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				b.Fatal(err)
			}
			if r.Key == cands[leader].Key() && k.Count == 2 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		start := time.Now()
		if err := cands[leader].Resign(ctx); err != nil {
			b.Fatal(err)
		}
		if err := <-got; err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		leader = 1 - leader
	}
	reportPercentiles(b, took)
}

// BenchmarkFailoverCrash measures, on a 3-node cluster, the time from a leader's client
// dying without resigning to the standby leading. It is bounded below by the lease TTL
// (1s here): etcd must expire the dead leader's lease first.
func BenchmarkFailoverCrash(b *testing.B) {
	c := benchCluster(b)
	ctx := context.Background()
	pfx := etcdtest.Prefix(b) + "e"
	var took []time.Duration
	i := 0
	newCand := func() (*election.Candidate, *clientv3.Client) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[i%3].GRPCURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		i++
		cand, err := election.New(cli, pfx, fmt.Sprintf("c%d", i), election.WithTTL(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		return cand, cli
	}
	leader, leaderCli := newCand()
	if err := leader.Campaign(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		standby, standbyCli := newCand()
		got := make(chan error, 1)
		go func() { got <- standby.Campaign(ctx) }()
		for {
			k, err := c.Client(0).Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				b.Fatal(err)
			}
			if k.Count == 2 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		start := time.Now()
		leaderCli.Close() // crash: no resign, the lease runs out
		if err := <-got; err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		_ = leader.Close()
		leader, leaderCli = standby, standbyCli
	}
	_ = leader.Close()
	leaderCli.Close()
	reportPercentiles(b, took)
}
