package monitor_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

// Remediation is off unless configured, cluster by cluster: here NOSPACE is answered at
// any time and fragmentation on weekend nights, both as dry runs first. Maintenance
// through the API answers 202 with the operation, which runs in the background.
func ExampleWithRemediation() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	svc, err := monitor.New([]monitor.Cluster{{Name: "prod", Client: cli}},
		monitor.WithRemediation("prod", monitor.Remediation{
			NoSpace:    true,
			Defragment: true,
			Window:     maintenance.MustParseWindow("Sat,Sun 02:00-04:00 Europe/Berlin"),
			DryRun:     true,
		}))
	if err != nil {
		panic(err)
	}
	defer svc.Close() // waits for the operation in flight
	srv := httptest.NewServer(svc)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/api/v1/clusters/prod/maintenance/compact", "application/json",
		strings.NewReader(`{"keepRevisions":1000,"dryRun":true}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var op monitor.MaintenanceOperation
	if err := json.NewDecoder(resp.Body).Decode(&op); err != nil {
		panic(err)
	}
	fmt.Println(resp.StatusCode, op.Kind, op.State, resp.Header.Get("Location") == "/api/v1/clusters/prod/maintenance/"+op.ID)
	// Output: 202 compact running true
}
