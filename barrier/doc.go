// Package barrier provides barriers on etcd: a Barrier that blocks processes until its
// holder releases it, and a DoubleBarrier that lets a fixed number of participants start
// and finish a computation together.
//
// Unlike etcd's contrib recipes, every key a participant writes lives on a lease of its
// own, kept alive while the process lives: a participant that crashes or is cut off is
// counted out when that lease expires, and never blocks the others for good.
//
// # Guarantees
//
//   - Barrier: Wait returns at once if the barrier is not held, and otherwise once the
//     hold it found has ended: its holder called Release or Close, or its lease expired.
//     It does not promise that nobody holds the barrier when it returns: another Barrier
//     may have taken it again meanwhile (Wait then returns all the same). Only one
//     Barrier holds it at a time; Hold by another returns ErrHeld, Release by a
//     non-holder ErrNotHeld.
//   - DoubleBarrier: Enter returns once count participants with live leases have entered
//     (keys written under key/waiters/ while the barrier was closed); Leave returns once
//     every participant that was inside with it has left. Both wait on watches.
//   - What the others see when a participant crashes: a crashed holder of a Barrier
//     releases it, and its waiters go on, when its lease expires — up to WithTTL after
//     its last renewal, longer if etcd elects a new leader meanwhile (etcd then extends
//     leases). A participant that crashes before the group is complete stops being
//     counted at the same point; if the group completes before that, it opens with the
//     crashed one counted in. A participant that crashes inside a DoubleBarrier counts
//     as having left once its lease expires, so the others' Leave returns then.
//   - Done closes when this participant's own lease is lost, so it knows it has been
//     counted out (and a Barrier it held released).
//   - Not guaranteed: that a participant of a finished round does not count towards the
//     next one if it has not left yet; participants enter the next round only after
//     their Leave returned. All participants of a DoubleBarrier must use the same count.
//
// # Lifecycle
//
// New and NewDouble do not block and start nothing; the first Hold or Enter grants a
// lease of WithTTL (default 10s) and keeps it alive until Close. A lost lease ends the
// Barrier or DoubleBarrier: Done closes, Err returns ErrLost, and calls return ErrLost;
// make a new one. Close revokes the lease (releasing a held Barrier, counting a
// DoubleBarrier participant out), waits at most two seconds for etcd, and is idempotent.
// A canceled Enter removes its key before it returns. The client stays the caller's.
//
//	b, err := barrier.NewDouble(cli, "/jobs/reindex", 3)
//	if err != nil { return err }
//	defer b.Close()
//	if err := b.Enter(ctx); err != nil { return err } // all three are here
//	work()
//	return b.Leave(ctx) // all three are done
package barrier
