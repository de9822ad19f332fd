// Package lease keeps an etcd lease alive and says plainly when it is gone.
//
// A Keeper grants a lease of a TTL, renews it, and watches its own renewals: the lease
// counts as lost when etcd answers that it no longer exists (revoked from elsewhere,
// expired), and also a margin before etcd could expire it when renewals go unanswered,
// because from then on the keys attached to it may be gone. The renewals and this
// definition of loss are the ones lock and election use.
//
// # Guarantees
//
//   - Lost (and, without re-grant, Done) closes within one renewal interval (at most one
//     second) after etcd reports the lease revoked or expired.
//   - Lost closes a margin (a sixth of the TTL, at least 200ms) before the earliest
//     instant etcd could expire the lease — the send time of the last acknowledged
//     renewal plus the TTL etcd returned — even if etcd is unreachable: the Keeper never
//     claims a lease that etcd may already have expired.
//   - That instant is kept by the wall clock too: Go's timers stop while the machine is
//     suspended (the monotonic clock does), etcd's clock does not. After a suspend that
//     outlasted the lease's deadline, Lost closes at the first renewal due after waking
//     (within a renewal interval), which is not sent; the reply to one sent before the
//     suspend does not count. A wall clock stepped forward may end a lease early; one
//     stepped back never keeps it longer.
//   - Each renewal is a request of its own, sent to the member that answered the last
//     one; one not answered within half the time left is hedged by another to the next
//     member, and so on at half the time then left (six requests at most), and one
//     refused (a member without a leader, a connection that cannot be made) goes on to
//     a member not tried yet at once. So neither an endpoint that stops answering nor
//     a slow server costs the lease while a renewal can still land in time; nor does a
//     leader election.
//   - For a client of more than one endpoint, renewals go on connections of their
//     own (a client of one endpoint renews on its own connection), made by the
//     client's Dial, one per endpoint, shared by every Keeper, lock and election of
//     the client, so they take no turn from the application's requests on the
//     client's connection. Cost: a connection to each endpoint a renewal went to, per
//     client; one to an endpoint the client no longer lists is closed at the next
//     renewal, and all of them when the client's last lease, lock or election session
//     ends. On each connection, a Keeper renews on a keep-alive stream of its own,
//     kept open: under password auth, clientv3 authenticates before each stream it
//     opens, so once per stream, not per renewal. A renewal that stops waiting for its
//     reply (answered elsewhere first) ends the stream it went on, and the next
//     renewal there opens a new one.
//   - A lease given up for silence is no longer renewed, and is revoked as soon as etcd
//     answers; if etcd refuses the revoke for good (permission denied), that is logged
//     and the lease left to expire within its TTL.
//   - With WithRegrant, a lost lease is replaced by a new one, with jittered backoff and
//     no retry cap, until Close; ID and Lost switch to the new lease, then the hook runs
//     with its ID. A failing hook is retried with backoff while that lease lives.
//   - Close waits for etcd at most a third of the TTL (at least one second) in all,
//     CloseContext no longer than its ctx either, even when etcd is unreachable; a
//     revoke given up then leaves the lease to expire within its TTL.
//   - Not guaranteed: that keys attached to a lost lease are gone at once (etcd may still
//     hold the lease for a moment).
//
// # Lifecycle
//
//   - New grants the lease and starts the Keeper's goroutines.
//
//   - Close revokes the current lease, stops the goroutines and waits for them; it is
//     idempotent. CloseContext does the same within a deadline of the caller's.
//
//   - Done closes after Close, or when the lease is lost and re-grant is off (or the etcd
//     client was closed, which ends re-grants too); Err then says why (ErrClosed or
//     ErrLost). The client stays the caller's.
//
// For example:
//
//	k, err := lease.New(ctx, cli, 10*time.Second)
//	if err != nil {
//		return err
//	}
//	defer k.Close()
//	cli.Put(ctx, "/svc/a", "addr", clientv3.WithLease(k.ID()))
//	<-k.Done() // the lease is gone; so, soon, is the key
package lease
