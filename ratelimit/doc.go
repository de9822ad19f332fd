// Package ratelimit is a rate limit shared by every instance of a service: a token
// bucket kept in etcd, from which each instance takes tokens in batches, so that most
// events cost no etcd round trip at all.
//
// New(cli, key, limit, per) admits limit events per period across all the Limiters on
// key, with bursts of up to WithBurst tokens (default limit). An instance with no tokens
// left takes up to WithBatch of them (default limit/20) from the bucket in one
// compare-and-swap; Allow then spends them locally, Wait waits for the bucket to refill.
// Close gives the unspent ones back.
//
// # Guarantees
//
//   - The overshoot bound: over any window of length T, the fleet admits at most
//     limit·T/per + burst + n·batch events, where n is the number of instances holding
//     tokens. The bucket holds at most burst tokens and refills at limit/per; an instance
//     takes a new batch only once it has spent the last, so at most n·batch tokens are
//     ever held outside the bucket. The fleet reaches the bound only when the bucket is
//     full and every instance holds a full batch at the start of the window: after a
//     quiet spell, with all instances then busy. With the defaults, 5 instances at
//     200/s admit at most 200·T + 200 + 50 in any T seconds.
//   - Refill is computed from the clock of the instance that takes tokens; clocks that
//     disagree by d can add up to limit·d/per more, once.
//   - Allow says no on the bucket as this instance last read or wrote it, refilled since,
//     if that was less than 100ms ago, and reads it again otherwise: a rejected call costs
//     at most one etcd read per 100ms per instance, and tokens another instance gave back
//     are seen within 100ms.
//   - A Limiter whose process crashes loses the tokens it held (the fleet then admits
//     less, never more). Close gives them back if etcd answers within two seconds.
//   - When etcd is unreachable, an instance spends the tokens it holds and then Allow
//     and Wait return etcd's error: the limit fails
//     closed. Wrap the call if your service should rather fail open.
//
// # Lifecycle
//
// New does not block and starts no goroutine; the first call that needs tokens creates
// the bucket, full, if it does not exist. Close gives the unspent tokens back (waiting at
// most two seconds for etcd) and makes later calls return ErrClosed; it is idempotent.
// All instances on a key must use the same limit, period and burst. The client stays
// the caller's.
//
//	l, err := ratelimit.New(cli, "/limits/partner-api", 200, time.Second)
//	if err != nil { return err }
//	defer l.Close()
//	if err := l.Wait(ctx); err != nil { return err }
//	callPartner(ctx)
package ratelimit
