package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

func Example() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()

	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Run would check every 30s; Refresh checks once, now.
	if err := svc.Refresh(ctx); err != nil {
		fmt.Println(err)
		return
	}

	srv := httptest.NewServer(svc)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/clusters/local/status")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var status monitor.StatusResponse
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode, status.Cluster, "healthy:", status.Healthy, "members:", status.Members)
	// Output:
	// 200 local healthy: true members: 1
}

func ExampleParseBenchmarkRequest() {
	_, err := monitor.ParseBenchmarkRequest([]byte(`{"type": "scan", "ops": 100}`))
	fmt.Println(err)
	req, err := monitor.ParseBenchmarkRequest([]byte(`{"type": "mixed", "duration": "5s", "rate": 1000}`))
	fmt.Println(req.Config.Workload, req.Config.Duration, req.Config.Rate, err)
	// Output:
	// bench: invalid argument: workload: unknown workload "scan" (want one of write, read, mixed, range, delete, txn)
	// mixed 5s 1000 <nil>
}

// A program that embeds the monitor reads what the API serves without HTTP.
func ExampleService_ClusterStatus() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	svc, err := monitor.New([]monitor.Cluster{{Name: "prod", Client: cli}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close()

	_, err = svc.ClusterStatus("prod")
	fmt.Println(errors.Is(err, monitor.ErrNoData))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.Refresh(ctx); err != nil {
		fmt.Println(err)
		return
	}

	status, err := svc.ClusterStatus("prod")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(status.Cluster, "healthy:", status.Healthy, "quorum:", status.Quorum.HasQuorum, "survives:", status.Quorum.FailuresTolerated)
	members, _ := svc.Members("prod")
	fmt.Println("members:", len(members.Members), "leader:", members.Members[0].IsLeader)
	leader, _ := svc.Leader("prod")
	fmt.Println("leader changes seen:", len(leader.Changes) > 0)
	current, _ := svc.CurrentMetrics("prod")
	fmt.Println("latency samples:", current.Snapshot.Latency.Samples > 0)
	hist, _ := svc.MetricsHistory(ctx, "prod", monitor.HistoryQuery{Since: time.Now().Add(-time.Hour), Limit: 10})
	fmt.Println("snapshots:", len(hist.Snapshots))
	firing, _ := svc.ActiveAlerts(monitor.AlertQuery{Cluster: "prod", State: alert.Firing})
	fmt.Println("firing:", len(firing))
	_, err = svc.ClusterStatus("staging")
	fmt.Println(errors.Is(err, monitor.ErrUnknownCluster))
	// Output:
	// true
	// prod healthy: true quorum: true survives: 0
	// members: 1 leader: true
	// leader changes seen: true
	// latency samples: true
	// snapshots: 1
	// firing: 0
	// true
}
