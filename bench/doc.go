// Package bench measures an etcd cluster: it runs a workload (write, read, mixed, range,
// delete, txn) over many connections and clients, and reports throughput, latency
// percentiles from an HDR histogram, a latency histogram in fixed buckets and errors by
// kind; it checks results against SLOs and against a saved baseline.
//
// # Guarantees
//
// Every operation a run issues is counted exactly once: Result.Ops = Successes +
// Failures, and a run bounded by Ops alone that is neither cancelled nor stopped by the
// quota guard issues exactly Config.Ops operations. A failed operation (a timeout, an
// unavailable member, NOSPACE) is counted under its kind in Result.Errors and never
// aborts the run; latencies are those of successful operations. The rate limit holds
// across all workers.
//
// A run cannot harm the process or the cluster it measures:
//
//   - Every size and count of a Config has an upper bound (MaxKeySize, MaxWorkers,
//     MaxRangeLimit, ...), checked field by field before any two are multiplied, so no
//     value overflows; the bytes one operation sends stay under etcd's default request
//     limit, and the bytes all workers can hold at once under MaxInFlightBytes. The
//     latency recorders are shared by the workers, a few per CPU, so memory does not
//     grow with the number of workers.
//   - Writes go only under the runner's prefix (WithPrefix, default "/bench/"), in a
//     sub-prefix of the run's own; a Config.Prefix outside it is refused.
//   - A quota guard reads every member's database size and quota before the run. A run
//     whose setup, or whose every operation when it is bounded by Ops alone, could
//     take a member past the share of its quota set by WithQuotaShare is refused with
//     ErrQuota; a run bounded by time is stopped before the write that could, and
//     Result.Stopped says so. The estimate per write errs on the high side.
//   - The run's keys are deleted when it ends, however it ends (unless
//     Config.KeepKeys), within the cleanup timeout (WithCleanupTimeout).
//   - Cancelling ctx stops a run at once, setup included: no new operation is issued;
//     those in flight are not abandoned (an abandoned write could still be applied after
//     the cleanup) but finish, each within Config.OpTimeout (a setup transaction within
//     30s or OpTimeout, whichever is longer); then the keys are deleted.
//
// What is not guaranteed: a run against a cluster that other clients are loading
// measures the cluster, not the workload alone, and the quota guard does not account
// for those clients' writes; TargetLeader picks the leader once, at the start, so a
// leader change during the run sends the rest of it to a follower.
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
