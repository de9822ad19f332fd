// Command etcd-monitor monitors etcd clusters: it checks their health and collects their
// metrics on a schedule, raises alerts the way Alertmanager sends them (pending and for,
// grouped, routed, inhibited, silenced), and serves a REST API and Prometheus metrics.
//
//	etcd-monitor --endpoints=10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379 --data-dir=/var/lib/etcd-monitor
//	etcd-monitor --embedded                      # try it with nothing installed (built with -tags embedded_etcd)
//	etcd-monitor --config=/etc/etcd-monitor.yaml # every key: config.example.yaml
//	etcd-monitor --run-benchmark --benchmark-type=mixed --benchmark-ops=100000
//
// Secure by default: with no API tokens configured (api.auth.tokens) anyone may read the
// API and nobody may change anything (benchmarks, silences answer 403), unless
// api.allow_unauthenticated_writes says otherwise, which it warns about at startup and in
// /health. Every request that changes something is logged with the name of its token.
//
// Alert state, the notification log, silences and benchmark results live in one state
// file under --data-dir, so a restart neither re-pages nor forgets a resolve; a state
// file that cannot be opened is a startup error naming it.
//
// SIGINT or SIGTERM stops it gracefully within api.shutdown_timeout: a benchmark in
// flight is cancelled at once, other requests complete, queued notifications are sent,
// and it exits 0.
//
// The guarded maintenance commands share the binary and the connection flags:
//
//	etcd-monitor defrag | compact | snapshot save | alarm list|disarm | member list|add|promote|remove | move-leader
//
// (see internal/maintcli, or etcd-monitor defrag --help).
//
// The daemon's alert rules, with the same thresholds and fors, as a Prometheus rule file
// over etcd's own metrics, for teams that alert in Prometheus:
//
//	etcd-monitor rules [--config=/etc/etcd-monitor.yaml] > etcd-rules.yaml
//
// Memory: the daemon collects garbage when its heap has grown by a quarter since the
// last collection (GOGC=25) rather than Go's default of doubling. Watching 20 clusters
// of 3 members, GOGC=50 saved about 8 MB of resident memory against the default for
// about 8% more of its CPU, and 25 saves about 4 MB more for about 18% more (a
// collection marks what is live, about 17 MB there, and the heap grows by GOGC percent of
// it before the next). The environment's GOGC, and GOMEMLIMIT for a soft limit, are
// honoured as usual.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/etcd-monitor/etcd-monitor/internal/maintcli"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rules" {
		os.Exit(rulesCommand(os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if len(os.Args) > 1 && maintcli.IsCommand(os.Args[1]) {
		code := maintcli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	tuneGC(os.Getenv)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-monitor:", err)
		os.Exit(1)
	}
}

// daemonGCPercent is the daemon's GOGC unless the environment sets one (see the package
// comment).
const daemonGCPercent = 25

// tuneGC sets the daemon's GOGC, unless the environment sets GOGC, and returns the
// percent it set (0: none).
func tuneGC(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		return 0
	}
	debug.SetGCPercent(daemonGCPercent)
	return daemonGCPercent
}
