package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

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
	resp, err := http.Get(srv.URL + "/api/v1/cluster/status")
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
