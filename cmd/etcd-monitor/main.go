// Command etcd-monitor monitors etcd clusters: it checks their health and collects their
// metrics on a schedule, raises alerts, and serves a REST API and Prometheus metrics.
//
//	etcd-monitor --endpoints=10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379
//	etcd-monitor --embedded                      # try it with nothing installed
//	etcd-monitor --config=/etc/etcd-monitor.yaml # every key: config.example.yaml
//	etcd-monitor --run-benchmark --benchmark-type=mixed --benchmark-ops=100000
//
// SIGINT or SIGTERM stops it gracefully: requests in flight complete, background work
// stops, and it exits 0.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-monitor:", err)
		os.Exit(1)
	}
}
