// Package metrics collects what an etcd cluster's members measure about themselves —
// scraped from each member's /metrics — together with request latency probed from the
// outside, keeps a history of snapshots, and exports them to Prometheus.
//
// # Guarantees
//
// Members are collected in parallel, each under its own timeout; a member that times
// out, refuses the connection or TLS, or serves something that is not the Prometheus
// text format gets the error in its MemberMetrics and the rest of the Snapshot is
// complete. Rates (throughput, DB growth, failed proposals, CPU) are deltas between two
// snapshots of the same member divided by the time between them, so they are zero in a
// member's first snapshot and after a counter reset. etcd's proposals committed, applied
// and pending are gauges despite the "_total" names and are reported as values, never as
// rates. WAL fsync and backend commit percentiles are interpolated within histogram
// buckets like Prometheus' histogram_quantile, over the observations since the previous
// snapshot when there are any (otherwise since the member started); the share of fsyncs
// slower than 16 ms is exact because 16 ms is a bucket boundary. Each Histogram also
// carries its cumulative buckets, and each member its unary gRPC requests by code, so
// that a consumer (the alert rules) can compute percentiles and ratios over any window
// of the history with WindowQuantile, resets included. A member that was not scraped
// has every scraped field zero and Scraped false: consumers must read that as
// "unknown", never as "zero".
//
// Members of an in-process test cluster share one Prometheus registry, so their
// scraped values are the same; real deployments have one process per member.
//
// # Lifecycle
//
// New returns an error wrapping ErrInvalidArgument, naming the argument, for a bad
// option (a nil Option included). A Collector owns no goroutines. Close unregisters the exporter when WithRegisterer was
// used; the client passed to New stays the caller's. Collect is safe for concurrent use.
//
//	c, err := metrics.New(cli, metrics.WithRegisterer(reg))
//	if err != nil { ... }
//	defer c.Close()
//	snap, err := c.Collect(ctx)
package metrics
