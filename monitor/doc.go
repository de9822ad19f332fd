// Package monitor watches etcd clusters on a schedule — health checks, metric
// collection, alert rules — and serves what it has learnt as a REST API and a Prometheus
// endpoint.
//
// # Guarantees
//
// The API answers from memory (or the store): no request waits on etcd (except POST
// /api/v1/clusters/{name}/benchmark, which runs a benchmark against it), so a cluster
// that is down or slow never slows the API; it shows the last check, when it ran and
// what failed. Each cluster's health is checked every health interval (default 30s) and
// its metrics collected every metrics interval (default 10s); a check that overruns its
// interval delays the next one instead of overlapping it, and one cluster's slow check
// never delays another's. After every check and every collection the alert rules run
// over the latest report and snapshot together, so an alert raised by one source is not
// resolved by an evaluation that lacks it. One alert.Manager serves every cluster: alerts
// go pending, fire after their rule's for, and are grouped, routed, inhibited and
// silenced across clusters.
//
// The API has one shape, described by the OpenAPI 3 document it serves at
// /api/v1/openapi.json, which is generated from the route table and the answers' Go
// types (a test checks every route against it and every answer against its schema).
// Cluster-scoped paths name the cluster in the path, /api/v1/clusters/{name}/status,
// /members, /leader, /history, /metrics/current, /metrics/history, /metrics/latency,
// /alerts, /alerts/history, /benchmark (POST) and /benchmarks; the older paths
// (/api/v1/cluster/status?cluster=NAME, ...) answer the same. Every duration is a
// number of seconds in a field whose name ends in "Seconds"; times are RFC 3339;
// member and cluster IDs are hexadecimal strings, as etcdctl prints them, and members
// are told apart by ID, never by name. Answers are compact JSON (?pretty=1 indents),
// gzipped when the client accepts it and the answer is 1 KB or more (a streamed one
// always). Bad input (unknown query parameters — except on
// /health, which ignores them — a malformed body, negative numbers) gets a 400 with a
// JSON ErrorResponse naming the problem; an unknown cluster a 404; a body that is not
// Content-Type: application/json a 415, one over 64 KiB a 413; a POST that acts on a
// cluster without naming it while several are monitored a 400. History endpoints take
// since, until and step and at most 1000 entries; at most WithHeavyRequests of them are
// answered at once (429 with Retry-After beyond), and /metrics/history is streamed, so
// neither a burst nor a large answer builds unbounded memory. Everything the API serves
// has a Go accessor (ClusterStatus, Members, Leader, HealthHistory, CurrentMetrics,
// MetricsHistory, LatencyHistory, ActiveAlerts, AlertHistory, Benchmarks, Health) that
// answers the same value.
//
// With WithStore, alert state, the notification log, silences, benchmark results and
// history (every health check and metric collection, queued from the loops, never
// from a request, and written for all clusters at once each second, so a store that
// fsyncs does so once a second; Refresh, the end of Run and Close write what is
// queued) outlive a restart, and the history endpoints read the store — with a
// PostgreSQL store, rollups reach back a year; a store that fails leaves them answering
// from memory. GET /api/v1/alerts lists pending and firing alerts with the silences and
// alerts that mute them; /api/v1/alerts/history merges every cluster's transitions by
// time; /api/v1/alerts/notifications is the notification log; /api/v1/silences (GET,
// POST) and /api/v1/silences/{id} (GET, DELETE) manage silences in Alertmanager's API v2
// shape. New returns an error wrapping ErrInvalidArgument for a nil or bad option. What
// is not guaranteed: between two checks the API describes the cluster as it was at the
// last one (the answer says when), and /metrics exports the state of the last check,
// not a live probe.
//
// POST /api/v1/clusters/{name}/maintenance/{defrag|compact|snapshot} starts a guarded
// maintenance operation in the background (202 and Location; one per cluster at a time
// in a Service, 409 otherwise), recorded in the store as it goes (GET
// .../maintenance, .../maintenance/{id}); WithSnapshotDir confines snapshots to one
// directory. WithRemediation, off by default and set per cluster, lets the Service answer
// NOSPACE (compact, defragment, disarm once under quota) and high fragmentation
// (defragment inside a maintenance window) by itself; each action is logged, recorded
// with the alert's fingerprint, held by a silence of that alert, and can be a dry run.
//
// The status page at / (embedded; no external resource; a strict Content-Security-Policy)
// reads the API and follows /api/v1/events, a Server-Sent Events stream that starts with
// "resync" and then sends "health", "metrics" and "alerts" naming the cluster; a client
// that falls behind its 32-event queue gets a "resync" instead of blocking the monitor.
// /metrics labels member series with cluster and member (the hex ID).
//
// Replicas: with WithStandby (and a shared store) the Service monitors and serves but
// evaluates and notifies nothing, reading alerts, silences and notifications from the
// store; RunAlerts runs the alert engine for one lease term over a fenced store, loading
// the previous term's state, so a takeover neither re-sends a notification nor loses a
// resolve. Only the evaluating replica exports etcd_monitor_alerts_firing counts.
//
// # Lifecycle
//
// New builds one alert.Manager, and a health.Checker, metrics.Collector and bench.Runner
// per cluster; it starts nothing but the alert manager's delivery goroutines. Run does the work until its context ends or Close is
// called; the caller picks the goroutine. Close stops Run and any benchmark in flight,
// waits for them and closes the alert manager (which sends what is queued within its
// shutdown timeout) and the collectors. Interrupt cancels the benchmarks and the
// maintenance operation in flight (recorded as cancelled) and ends event streams without
// stopping anything else, for a daemon that begins to shut down; Close waits for them. The clusters' clients stay the caller's. The Service is an http.Handler;
// serving it (TLS, authentication, timeouts) is the caller's business, as in
// cmd/etcd-monitor, which lets only admin tokens make the requests that change something:
// the benchmark and maintenance POSTs, POST /api/v1/silences and DELETE
// /api/v1/silences/{id} (marked x-admin-only in the OpenAPI document).
//
//	svc, err := monitor.New([]monitor.Cluster{{Name: "prod", Client: cli}}, monitor.WithStore(st),
//		monitor.WithAlertOptions(alert.WithConfig(cfg), alert.WithShutdownTimeout(10*time.Second)))
//	if err != nil { ... }
//	defer svc.Close()
//	go svc.Run(ctx)
//	http.ListenAndServe(":8080", svc)
//
// A program that embeds the monitor reads the same without HTTP:
//
//	status, err := svc.ClusterStatus("prod") // ErrNoData before the first check
//	fmt.Println(status.Healthy, status.Quorum.FailuresTolerated, status.CheckDurationSeconds)
package monitor
