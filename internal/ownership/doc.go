// Package ownership is the one core under lease, lock and election: a lease known to be
// alive until a deadline, and keys owned while a policy says so. Read it in the order a
// holding lives:
//
//   - session.go — Session: a lease (granted here, or borrowed from the caller's
//     concurrency.Session) and its tracker, the one renewal loop and the one definition
//     of loss: each renewal is a keep-alive request sent to the member that answered
//     the last renewal and hedged by up to five more to the next members when slow,
//     and at once to a member not tried yet when refused. For a client of more than one
//     endpoint, the renewals go on connections of their own, one per endpoint, shared
//     by all the sessions of a client (renewconns.go), so they take no turn from the
//     application's requests on the client's connection; cost: one connection to each
//     endpoint a renewal went to, per client, however many sessions. A client of one
//     endpoint has no member to choose: its renewals go on its own connection and share
//     the fate of the application's requests, as etcd's keep-alive does. On each
//     connection a session renews on a keep-alive stream of its own, kept open
//     (keepalives.go), so a client with a password authenticates once per session and
//     stream, not once per renewal, and no session's renewal waits behind another's; a
//     request left unanswered ends its stream, and a renewal that comes back to a member
//     it waits for opens a new one. The lease is known to be
//     alive until the send time of the last acknowledged renewal plus the TTL, minus
//     Margin. When that passes — by the monotonic clock or by the wall clock, which
//     alone runs on while the machine is suspended — or etcd says the lease is gone,
//     the session is lost for good; a lease of our own is then revoked as soon as etcd
//     answers. Its janitor deletes the keys handed to Drop until the delete lands or
//     the lease is gone; a delete or revoke that etcd refuses for good (permission
//     denied, an invalid request) is logged and left to the lease's expiry. holder.go —
//     Holder: the live session of one owner, replaced after loss.
//   - acquire: claim.go — Claim, one participant and its succession of holdings, in its
//     user's errors (Vocab); acquire.go — Claim.Acquire puts a key of a name never used
//     before, then waits — only for the key the Policy names — until the policy says it
//     is owned, returning only after a read that found the key while the lease was
//     known alive. policy.go — who owns: the oldest key (mutex, election), one of the n
//     oldest (semaphore), no older writer (readers-writer lock). hedge.go — the
//     requests of an acquisition or release but the put (grant, reads, delete) are
//     hedged through the client's next endpoint when unanswered after CallTimeout;
//     watch.go — a wait's watch runs on a stream of its own that asks etcd for progress
//     every CallTimeout and is given up after twice that without an answer, then read
//     and watched again, the watch's creation hedged like a request (watchConfirmed):
//     one etcd has not confirmed after CallTimeout is made again on a new stream, which
//     the client opens through its next endpoint. A member that stops answering while
//     the rest of the cluster serves holds an acquisition up about that long. Without
//     that hedge the client, which takes its endpoints in turn, would send every new
//     watch to the silent member: the read before it ends on the one that answers.
//   - hold: holding.go — Holding: the fence (Cmp, Txn) and the end (Done, Err), noticed
//     locally from the session's deadline at every check and asynchronously, once Done
//     was called, from the session's loss and a watch on the key. Those watches of all
//     the holdings of a Session share one stream (watch.go), checked for silence like a
//     wait's; a watch that breaks or falls silent is followed by a hedged read of the
//     key and a new watch, so a key deleted or replaced while the member streaming its
//     watch is silent still ends the holding (ErrKeyLost): three CallTimeouts at most
//     after the member fell silent, plus the read's one (three if the client sends its
//     hedge to the silent member too), and, if the new watch is made through that
//     member, its creation's, hedged like a wait's: one CallTimeout, three if its first
//     hedge goes to that member too. (The watch is made again on a new stream only when
//     the session's stream it went through has never answered; one that answered before
//     is left to its silence check.) Cost: per Session with watched holdings, one gRPC
//     watch stream and one progress request every CallTimeout (once a second to once
//     every 3s), however many holdings; per holding, one watch on that stream and no
//     periodic request — one read (two if hedged) each time its watch breaks or the
//     stream falls silent. A watch etcd does not confirm within CallTimeout costs one
//     more stream while the one it went through answers nothing (the holdings' watches
//     unconfirmed on it move to that one stream), closed once no watch is left on it. A
//     waiter's stream of its own costs as much as that of a Session.
//   - release: Holding.Release deletes the key (Session.remove, the one delete) — the one
//     release path (Claim.Release, which Unlock and Resign are); Abandon leaves the
//     delete to the session's janitor when the caller may not wait (Close).
package ownership
