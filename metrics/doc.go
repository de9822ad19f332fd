// Package metrics collects what an etcd cluster's members measure about themselves —
// scraped from each member's /metrics — together with request latency probed from the
// outside, keeps a history of snapshots, and exports them to Prometheus.
//
// # Guarantees
//
// Members are collected in parallel (at most WithConcurrency at once), each under its
// own timeout; a member that times out, refuses the connection or TLS, or serves
// something that is neither of Prometheus' exposition formats gets the error in its
// MemberMetrics and the rest of the Snapshot is complete.
//
// A member's /metrics is asked for in Prometheus' protobuf format, as Prometheus asks for
// it, and read in the text format when the member (or a proxy) answers in that. Either is
// parsed as a stream, reading only the families the collector uses (FamilyNames; etcd
// does not filter on request) and building no per-series objects; in the protobuf format
// the other families are skipped by their length, unread, which takes less than half the CPU
// of the text format on a real etcd body (itself about 20 times less than a full parse).
// Both formats yield the same values. Whatever a member sends, one scrape holds at most a
// 64 KiB buffer (a line of the text format, or a metric of the protobuf format, of a
// family the collector reads may be no longer), 18 gRPC codes and 128 buckets per
// histogram; a body over MaxScrapeBytes (16 MiB) is an error (ErrTooLarge), never a
// truncated parse. A member's unary requests
// are counted by gRPC's 17 code names; any other grpc_code value counts as "Other", so
// that a member making up label values cannot grow its snapshots, the history, the store
// or the exported series. NaN and ±Inf values are dropped at collection as if the series
// were absent, and rates that overflow are 0, so that every Snapshot encodes as JSON;
// histogram buckets are made cumulative and at most the count (a count saturates at
// 2^53), so that shares stay within [0, 1]. A histogram with a bucket bound that is not
// a bound of seconds — negative, NaN, -Inf, or over a million seconds (11.6 days; etcd's
// largest is 8.192 s) — is left out of the member's snapshot as if absent (zero
// Histogram, no buckets), and the rest of the member's numbers are kept: a quantile is
// therefore always a duration from 0 to the largest finite bound. A bound that does not
// parse as a number is an error for the whole scrape, like any malformed line of a family
// the collector reads. A member that leaves the cluster is forgotten at
// the next collection that reads the membership: its state and its exported series go. Rates (throughput, DB growth, failed proposals, CPU) are deltas between two
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
// The exporter (Exporter, or WithRegisterer) is Prometheus-native: what the Collector
// measures itself are histograms and counters recorded as they happen —
// etcd_monitor_probe_duration_seconds (classic and native buckets), _probe_errors_total,
// _scrape_duration_seconds, _scrape_errors_total, _scrape_size_bytes and
// _metric_collection_duration_seconds — and what the members said at the latest
// collection is exported with its own type as etcd_monitor_member_*: gauges, counters
// (_total) and etcd's disk and peer histograms with their buckets, so that Prometheus can
// aggregate across members and clusters. Every member series is labelled member, the
// member's ID in hex; the monitor adds cluster.
//
// Members of an in-process test cluster share one Prometheus registry, so their
// scraped values are the same; real deployments have one process per member.
//
// # Lifecycle
//
// New returns an error wrapping ErrInvalidArgument, naming the argument, for a bad
// option (a nil Option included). A Collector runs no goroutines of its own, but it keeps
// connections to the members between collections, so that a collection costs no
// handshakes: one gRPC connection per member for the probes (dropped when a probe through
// it fails, so that a member that comes back is probed through a new one at once, and
// when the member leaves the cluster) and kept-alive HTTP connections for /metrics.
// The gRPC connections are shared with the health.Checker of the same client (one per
// member for both). Close closes the HTTP ones, and the gRPC ones once no Checker of the
// client uses them either, and unregisters the exporter when WithRegisterer was used;
// closing the client closes the gRPC connections too. The client passed to New stays the caller's. Collect
// is safe for concurrent use, and works after Close without keeping connections; a
// Collect that Close overlaps keeps none either once it returns.
//
//	c, err := metrics.New(cli, metrics.WithRegisterer(reg))
//	if err != nil { ... }
//	defer c.Close()
//	snap, err := c.Collect(ctx)
package metrics
