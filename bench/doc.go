// Package bench measures an etcd cluster: it runs a workload (write, read, mixed, range,
// delete, txn) over many connections and clients, and reports throughput, latency
// percentiles from an HDR histogram, a latency histogram in fixed buckets and errors by
// kind; it checks results against SLOs and against a saved baseline.
//
// # Guarantees
//
// Every operation a run issues is counted exactly once: Result.Ops = Successes +
// Failures, and a run bounded by Ops alone that is not cancelled issues exactly Config.Ops
// operations. A failed operation (a timeout, an unavailable member, NOSPACE) is counted
// under its kind in Result.Errors and never aborts the run; latencies are those of
// successful operations. The rate limit holds across all workers. Keys live under a
// prefix of their own per run and are deleted when the run ends, even when it fails or
// is cancelled (unless Config.KeepKeys). What is not guaranteed: a run against a
// cluster that other clients are loading measures the cluster, not the workload alone;
// and TargetLeader picks the leader once, at the start, so a leader change during the
// run sends the rest of it to a follower.
//
// # Lifecycle
//
// New keeps the client it is given and never closes it. Run opens Config.Connections
// connections of its own (from the client's endpoints, or WithClientConfig), and closes
// them before it returns; it returns after every worker and the progress reporter have
// stopped. A Runner holds nothing between runs and needs no Close.
//
//	r, err := bench.New(cli)
//	res, err := r.Run(ctx, bench.Config{Workload: bench.Mixed, Duration: 30 * time.Second})
//	report := bench.DefaultSLO().Check(res)
//	fmt.Print(report)
package bench
