// Package watch follows keys in etcd without silently missing a change: a Watcher that
// resumes and re-lists, and a Cache that keeps a prefix in memory.
//
// # Guarantees
//
//   - A Watcher delivers every change of its key or prefix exactly once, in revision
//     order, across dropped connections, member restarts and leader elections: it
//     remembers the last revision delivered and resumes right after it. Watches use
//     clientv3.WithRequireLeader, so a member cut off from the cluster ends the watch
//     at once instead of leaving it silent, and the Watcher moves on. A watch that etcd
//     stops answering altogether (a blackholed connection) is abandoned after six
//     progress intervals (3s by default) and reopened, through another endpoint if the
//     client has one. A list or revision lookup etcd does not answer is given up after
//     the same time (doubling on each timeout, so that a large list still completes)
//     and tried again.
//   - When the resume revision has been compacted, the changes in between are gone from
//     etcd; the Watcher then re-lists and emits one Resync event carrying the full
//     current state, and continues from the revision of that list. A consumer that
//     replaces its state on Resync and applies every other event ends equal to etcd.
//   - A Cache applies each revision's events under one lock, so readers never see half a
//     transaction; after a re-list it tells subscribers exactly the keys that differ. Get,
//     List and Revision read memory only. Ready closes only after every subscriber added
//     before it was told the first listing, so after WaitReady a subscriber's view equals
//     List.
//   - Stale reports, within about three progress intervals, that the Cache may be behind
//     (disconnected, re-listing, or etcd silent). It does not say by how much. A quiet
//     store is not silence: etcd confirms the watch on request even when nothing
//     changes. Each Watcher and Cache has a gRPC watch stream of its own, so other
//     watches on the same client cannot delay that confirmation.
//   - Silence is timed on the monotonic clock: a wall clock stepped back does not hide
//     it, and one stepped forward does not abandon a healthy watch.
//   - Not guaranteed: that every intermediate value is seen after a compaction (only the
//     state after it), or that events arrive while the consumer is not reading (the
//     Watcher waits for the consumer; etcd buffers).
//
// # Lifecycle
//
// NewWatcher and NewCache start one goroutine each and return at once; bad arguments,
// a nil Option, or an option the constructor would not use (a Watcher-only option given
// to NewCache) make them return an error wrapping ErrInvalidArgument instead. Close
// stops the goroutine, waits for it and is idempotent; the Watcher then closes Events,
// and Err says why (ErrClosed, or ErrClientClosed when the etcd client was closed
// first). Subscribers run on the Cache's goroutine; one that calls Close does not wait
// for that goroutine, which ends when the subscriber returns. The etcd client stays the
// caller's.
//
//	w, err := watch.NewWatcher(cli, "/jobs/", watch.WithPrefix())
//	if err != nil {
//		return err
//	}
//	defer w.Close()
//	for ev := range w.Events() {
//		switch ev.Type {
//		case watch.Put, watch.Delete:
//			apply(ev.KV)
//		case watch.Resync:
//			replaceAll(ev.State)
//		}
//	}
package watch
