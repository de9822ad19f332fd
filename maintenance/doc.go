// Package maintenance runs the routine care of an etcd cluster — defragmentation,
// compaction, snapshots, alarms, membership changes and leader moves — guarded by a
// health check, so that an operation that would hurt the cluster is refused or stopped
// instead of run as given.
//
// etcdctl runs these operations as asked, even when that hurts: defragmenting the
// leader blocks it, defragmenting every member at once stalls the cluster, removing a
// member can cost quorum, and disarming NOSPACE before space is freed only raises it
// again. A Maintainer checks the cluster with a health.Checker before (and, for
// multi-step operations, between) the steps it takes.
//
// # Guarantees
//
//   - Defragment does one member at a time: learners, then followers, the leader last
//     (after handing leadership away, with MoveLeader). It starts each member only while
//     the cluster has a leader all members agree on, no split brain, no partitioned
//     member, no CORRUPT alarm, and enough healthy voters to keep a quorum while that
//     member pauses. It waits up to the settle timeout for that between members and
//     otherwise aborts, returning the report of what was done with ErrAborted.
//   - Remove refuses (ErrQuorum) when the voters left would lack a healthy quorum, and
//     (ErrUnhealthy) when another member is degraded. AddLearner adds non-voting members
//     only, and only to a cluster that is not degraded (quorum, an agreed leader, no
//     split brain, no partitioned member, no CORRUPT alarm), waiting up to the settle
//     timeout for one (a membership change just made, a leader just elected); a dry run
//     looks once. Both judge the cluster by a report whose membership is a linearizable
//     member list's. Promote promotes only once etcd agrees the learner has caught up.
//   - DisarmNoSpace disarms NOSPACE only once every member's database file is under a
//     share of its quota (ErrOverQuota otherwise), never CORRUPT. The way back from
//     NOSPACE is Compact, then Defragment, then DisarmNoSpace; RecoverNoSpace takes the
//     three steps in turn, each under its own guard, and stops at the first that fails.
//   - Snapshot and SnapshotFile verify what they wrote: the SHA-256 trailer etcd appends,
//     and etcd's own snapshot status (bbolt's consistency check); SnapshotFile leaves
//     either a verified file or none.
//   - Every operation takes a context, returns a typed report, and with DryRun checks its
//     guard and returns its plan without changing anything. A refused
//     or failed operation returns its report (as far as it got) with the error; only an
//     invalid argument (ErrInvalidArgument) and ErrBusy return a nil report.
//
// A Window (ParseWindow: "Sat,Sun 02:00-04:00 Europe/Berlin") says when maintenance
// may run by itself; the package does not schedule anything, its callers (the monitor's
// remediation) check Window.Contains before they start.
//
// What is not guaranteed: a health check is a point-in-time view, so a member that fails
// while it is being defragmented is only noticed at the next check; the operation then
// aborts, but the failed member stays failed. Compact's KeepNewerThan is only as precise
// as the period at which Mark is called, because etcd does not record when a revision
// was written.
//
// # Lifecycle
//
// A Maintainer owns no goroutines and holds nothing between operations; it needs no
// Close. The client passed to New stays the caller's. Operations may run concurrently,
// except that a Maintainer runs one defragmentation at a time (another returns
// ErrBusy); two Maintainers, or two processes, defragmenting one cluster at once defeat
// the one-at-a-time guarantee: run one.
//
//	m, err := maintenance.New(cli)
//	if err != nil { ... }
//	rep, err := m.Defragment(ctx, maintenance.DefragmentRequest{MoveLeader: true})
//	if errors.Is(err, maintenance.ErrAborted) { log.Print(rep.Reason) }
package maintenance
