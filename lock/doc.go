// Package lock provides distributed locks on etcd — Mutex, RWMutex, Semaphore and a
// Manager of named locks — that fence their holders and say when they lose the lock.
//
// # Guarantees
//
//   - A Mutex holder's key is the oldest under the lock's key. Lock returns only after
//     reading that key back with its create revision while the lease under it is known
//     to be alive, so a waiter whose lease expired while it waited gets an error, never
//     the lock.
//   - Token is that create revision: it strictly increases from one holder to the next,
//     so a resource that remembers the highest token it has seen can reject a stale
//     holder. Do applies a transaction only if we still own the lock when etcd applies it.
//   - Every attempt (Lock, TryLock, Acquire) puts a key whose name no other attempt, ours
//     or anyone's, ever uses. So Unlock — a plain delete of that name — can never delete
//     a later holder's key, even when retried or delivered late.
//   - Done closes when the holding ends: our key deleted, the lease revoked or expired,
//     or keep-alives unacknowledged for so long that etcd may expire the lease — in that
//     last case a margin (a sixth of the TTL, at least 200ms) before the earliest instant
//     etcd could, measured from the send time of the last acknowledged renewal. A lease
//     of our own given up that way is then revoked as soon as etcd answers, so the next
//     holder need not wait out its TTL.
//   - Two Mutex values never hold the same lock at once, even on one shared session.
//     Waiters wait only for the participant just ahead of them.
//   - A member that stops answering while the rest of the cluster serves (a frozen
//     process, a dead machine whose connections stay open) holds up Unlock and a waiter
//     about a sixth of the TTL (1s to 3s), not for as long as it is silent: a grant,
//     read or delete it leaves unanswered is sent again through the client's next
//     endpoint (at most two in flight), and a wait whose watch it stops confirming is
//     reopened after twice that, its creation sent again on another stream when etcd
//     has not confirmed it after a sixth of the TTL. So is a holder's watch of its own
//     key: a key deleted while that watch goes through the silent member still closes
//     Done, four to six times that (4s to 18s) after the member fell silent, one to
//     three times that more when the new watch is made through the silent member too.
//     The holders on one lease (a Manager's locks, a Semaphore's permits) share one
//     watch stream, asked for progress every 1s to 3s. The lease's renewals go to the
//     member that answered the last one (see package lease), so a silent member costs
//     one renewal's wait, not the lease. This needs a client that knows more than one
//     endpoint. The put that starts an acquisition is not sent twice: one swallowed by
//     a silent member waits for it, for the session's loss or for the caller's ctx.
//   - A canceled or failed acquisition leaves no key behind: it is deleted before Lock
//     returns when etcd answers within a third of the TTL (at least 1s), and otherwise in
//     the background, with backoff, until the delete lands or the lease is gone. The same
//     holds for keys given up by Close, and for every key on a shared session (WithSession)
//     that we declared lost while the caller's lease may live on.
//   - Every cleanup (Close, LockAll's release after a failure) waits at most a third of
//     the TTL (at least 1s) per call to etcd; the deletes of the many locks of a Manager,
//     a Semaphore or UnlockAll are waited for together, not one after another.
//   - Not guaranteed: a holder that keeps working after Done closed, or whose process
//     pauses longer than the margin, can still act on a stale belief — pass Token to the
//     resource, or write through Do. etcd resets lease TTLs when its own leader changes,
//     so a crashed holder's lock can outlive its TTL.
//
// # Lifecycle
//
//   - New, NewRWMutex, NewSemaphore and NewManager do not block; the first acquisition
//     grants a lease of the TTL (WithTTL, default 10s) unless WithSession shares one the
//     caller owns.
//
//   - A lost lease of our own is replaced by the next acquisition; a lost shared session
//     makes acquisitions fail with ErrSessionLost.
//
//   - Close releases what is held and revokes our own lease; it is idempotent. It also
//     ends a Lock (or Acquire) in flight on the same value, which returns ErrClosed, even
//     on a lease that lives on (a Manager's, a shared session). A canceled Lock removes
//     its waiting key before it returns (see the cleanup bound above).
//
// For example:
//
//	m, err := lock.New(cli, "/locks/report")
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	if err := m.Lock(ctx); err != nil {
//		return err
//	}
//	defer m.Unlock(context.WithoutCancel(ctx))
//	_, err = m.Do(ctx, clientv3.OpPut("/report/owner", host)) // ErrNotHeld once lost
//
// Lock names must not be prefixes of one another followed by "/" ("a" and "a/b"), as
// participants of "a" live under "a/".
package lock
