// Package etcdmonitor is the root of a Go module for services that coordinate through
// etcd, and for the operators who watch their etcd clusters.
//
// The module has two halves on one foundation.
//
// Coordination patterns, each a package of its own: [lock] (mutexes, read-write locks and
// semaphores with fencing tokens and loss detection), [election] (leader election with
// leadership as a context), [discovery] (self-healing service registration, resolution,
// load balancing and a gRPC resolver), [config] (typed, hot-reloading configuration and
// feature flags), built on [lease] (leases kept alive and re-granted), [txn]
// (compare-and-swap and optimistic updates) and [watch] (watches that never silently miss
// state, and an in-memory cache of a prefix).
//
// Monitoring primitives: [health] (membership, quorum, leader, split brain, partitions,
// alarms), [metrics] (latency probes and server metrics, exported to Prometheus), [alert]
// (rules, deduplication and notifiers) and [bench] (workloads, latency histograms, SLOs),
// assembled by [monitor] and the etcd-monitor daemon.
//
// What sets these packages apart is that they are safe by construction: a lock or a
// leadership carries a fencing token and says when it is lost, a registration heals
// itself after an outage, and a watch either delivers every change or tells its consumer
// to resynchronise. Each package's documentation states its guarantees and what they do
// not cover.
//
// [lock]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/lock
// [election]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/election
// [discovery]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/discovery
// [config]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/config
// [lease]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/lease
// [txn]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/txn
// [watch]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/watch
// [health]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/health
// [metrics]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/metrics
// [alert]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/alert
// [bench]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/bench
// [monitor]: https://pkg.go.dev/github.com/etcd-monitor/etcd-monitor/monitor
package etcdmonitor
