package metrics_test

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// Collect a snapshot of the shared single-node cluster and export it to a registry of
// our own.
func ExampleCollector_Collect() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()

	reg := prometheus.NewRegistry()
	c, err := metrics.New(cli, metrics.WithRegisterer(reg))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := c.Collect(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := snap.Members[0]
	fmt.Println("members:", len(snap.Members), "scraped:", m.Scraped, "error:", m.Err)
	fmt.Println("latency samples:", m.Latency.Samples, "ordered:", m.Latency.P50 <= m.Latency.P95 && m.Latency.P95 <= m.Latency.P99)
	fmt.Println("has leader:", m.Raft.HasLeader, "db within quota:", m.DB.Size > 0 && m.DB.Size < m.DB.Quota)
	n, err := testutil.GatherAndCount(reg, "etcd_monitor_member_up")
	fmt.Println("exported member_up series:", n, err)
	// Output:
	// members: 1 scraped: true error: <nil>
	// latency samples: 10 ordered: true
	// has leader: true db within quota: true
	// exported member_up series: 1 <nil>
}
