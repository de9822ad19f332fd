package dashboards_test

import (
	"encoding/json"
	"fmt"

	"github.com/etcd-monitor/etcd-monitor/dashboards"
)

// The dashboard is plain Grafana JSON, ready to import or provision.
func Example() {
	var d struct {
		Title string `json:"title"`
		UID   string `json:"uid"`
	}
	b, err := dashboards.FS.ReadFile(dashboards.Overview)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := json.Unmarshal(b, &d); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Title, d.UID)
	// Output: etcd-monitor overview etcd-monitor-overview
}
