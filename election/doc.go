// Package election elects one leader among candidates on etcd, hands the leader a
// context that ends the moment it stops leading, and fences its writes.
//
// # Guarantees
//
//   - The leader is the candidate whose key is the oldest under the election's prefix.
//     Campaign returns only after reading its own key back with its create revision while
//     its lease is known to be alive: a candidate whose lease expired while it waited gets
//     an error, never leadership (etcd's own Campaign returns success then).
//   - Token is that create revision, strictly increasing from one leader to the next; Do
//     applies a transaction only if we still lead when etcd applies it.
//   - Leadership ends — Done closes, Run's leader context is canceled, OnDefeat is called —
//     when our key is deleted, the lease is revoked or expires, or keep-alives go
//     unacknowledged so long that etcd may expire the lease; in that last case a margin (a
//     sixth of the TTL, at least 200ms) before the earliest instant etcd could, measured
//     from the send time of the last acknowledged renewal, so a leader cut off from etcd
//     stops before another can be elected. A lease of our own given up that way is revoked
//     as soon as etcd answers, so the next leader need not wait out its TTL.
//   - An etcd leader change does not end leadership.
//   - A member that stops answering while the rest of the cluster serves (a frozen
//     process, a dead machine whose connections stay open) holds up Resign and a
//     waiting candidate about a sixth of the TTL (1s to 3s), not for as long as it is
//     silent: a grant, read or delete it leaves unanswered is sent again through the
//     client's next endpoint (at most two in flight), and a wait whose watch it stops
//     confirming is reopened after twice that, its creation sent again on another
//     stream when etcd has not confirmed it after a sixth of the TTL. So is the
//     leader's watch of its own key: a key deleted while that watch goes through the
//     silent member still ends leadership, four to six times that (4s to 18s) after the
//     member fell silent, one to three times that more when the new watch is made
//     through the silent member too. The lease's renewals go to the member that
//     answered the last one (see package lease), so a silent member costs one renewal's
//     wait, not the lease. This needs a client that knows more than one endpoint. The
//     put that starts a campaign is not sent twice: one swallowed by a silent member
//     waits for it, for the session's loss or for the caller's ctx.
//   - An Observer reports every leader its watch shows, the zero Leader for none, and
//     reads the leader again when the watch breaks or the leader's key is deleted. A
//     member that stops answering while the rest of the cluster serves blinds it about
//     five call timeouts (a call timeout is that of a candidate of the default TTL, a
//     sixth of 10s: 1.67s), not for as long as it is silent: the Observer asks etcd for
//     progress on its watch, a gRPC stream of its own, once every call timeout, gives
//     the watch up after twice that without an answer (found so up to one call timeout
//     later), then reads the leader and watches it again, each sent again (the watch on
//     another stream) through the client's next endpoint when unanswered or
//     unconfirmed after a call timeout. Err says so until it follows again. The cost is
//     that stream and one progress request per call timeout per Observer, and one more
//     stream for each watch made again while etcd does not confirm it. This needs a
//     client that knows more than one endpoint.
//   - Every campaign uses a key name never used before, so no delete of an earlier one can
//     reach a later leadership. A canceled or failed campaign leaves no key behind: it is
//     deleted before Campaign returns when etcd answers within a third of the TTL (at least
//     1s), and otherwise in the background until the delete lands or the lease is gone.
//   - Run never leaves a leader that runs nothing: when its resign fails after fn
//     returned, the candidate steps down and its key is deleted in the background.
//   - Close waits at most a third of the TTL (at least 1s) per call to etcd.
//   - Not guaranteed: a leader that ignores its canceled context, or whose process stalls
//     longer than the margin, can act on a stale belief — fence external writes with Token
//     or use Do. etcd resets lease TTLs when its own leader changes, so replacing a crashed
//     leader can take longer than one TTL.
//
// # Lifecycle
//
//   - New does not block; the first Campaign grants a lease of the TTL (WithTTL, default
//     10s) unless WithSession shares one the caller owns.
//
//   - Run campaigns again at once after every loss and replaces a lost lease of our own,
//     until its ctx ends; it resigns on the way out.
//
//   - Close resigns, revokes our own lease and waits for the candidate's goroutines. A
//     Campaign in flight returns ErrClosed, its key removed, even on a shared session.
//
//   - An Observer's Changes channel is closed by Close. A LeaderTask runs inside its
//     candidate's Run.
//
// For example:
//
//	c, err := election.New(cli, "/election/scheduler", hostname)
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	return c.Run(ctx, func(leaderCtx context.Context) error {
//		for leaderCtx.Err() == nil {
//			// lead; fence external writes with c.Token(), etcd writes with c.Do
//		}
//		return leaderCtx.Err()
//	})
package election
