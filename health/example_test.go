package health_test

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// A health check of the shared single-node cluster: one voting member, quorum of one.
func ExampleChecker_Check() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()

	checker, err := health.New(cli, health.WithTimeout(2*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer checker.Close() // the connections it keeps to the members
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := checker.Check(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := r.Members[0]
	fmt.Println("members:", len(r.Members), "reachable:", m.Reachable, "livez:", m.Livez.OK)
	fmt.Printf("quorum: %d of %d needed, has quorum: %v\n", r.Quorum.Healthy, r.Quorum.Size, r.Quorum.HasQuorum)
	fmt.Println("leader agreed:", r.Leader.Agreed, "is the member:", r.Leader.ID == m.Member.ID)
	fmt.Println("split brain:", r.SplitBrain.Detected, "partition:", r.Partition.Detected, "alarms:", len(r.Alarms))
	fmt.Println("healthy:", r.Healthy, "leader changes seen:", len(r.LeaderHistory))
	// Output:
	// members: 1 reachable: true livez: true
	// quorum: 1 of 1 needed, has quorum: true
	// leader agreed: true is the member: true
	// split brain: false partition: false alarms: 0
	// healthy: true leader changes seen: 1
}
