// Package dashboards holds Grafana dashboards for etcd-monitor, as JSON files to import
// into Grafana, embedded so that a program can serve or provision them.
//
// etcd-monitor.json ("etcd-monitor overview") shows every cluster the daemon watches:
// health, quorum margin, alerts and leader changes; per member, probe latency (p99 per
// member and across clusters, from histograms), requests, reads and writes, DB size and
// quota, WAL fsync, backend commit and peer round-trip p99, raft lag, CPU and memory;
// etcd's own metrics for teams whose Prometheus also scrapes the members; and the
// monitor itself (check, collection and scrape durations, notifications and their
// delivery time, CPU, memory).
// Its variables are the data source, the clusters (label cluster), and the Prometheus
// jobs of etcd-monitor and of etcd.
//
// # Guarantees
//
// Every query of every panel and variable names only metrics that exist: etcd-monitor's
// as its registry exports them, etcd's as a real member serves them. The package's test
// checks both, so a renamed metric fails the build instead of leaving an empty panel.
// Panel IDs are unique, and every panel queries the dashboard's data source variable.
//
// # Lifecycle
//
// Nothing to start or close: the files are read-only data.
//
//	b, err := dashboards.FS.ReadFile(dashboards.Overview) // import into Grafana
package dashboards

import "embed"

// FS holds the dashboards, one JSON file each.
//
//go:embed *.json
var FS embed.FS

// Overview is the file name in FS of the etcd-monitor overview dashboard.
const Overview = "etcd-monitor.json"
