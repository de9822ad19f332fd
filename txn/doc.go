// Package txn makes etcd's compare-and-swap transactions short to write and hard to get
// wrong: conditional puts and deletes, an optimistic read-modify-write loop, atomic
// multi-key batches, and a bounded wrapper over concurrency.STM.
//
// # Guarantees
//
//   - Every write here is one etcd transaction guarded by a comparison; it either
//     happens exactly as guarded or not at all, and a failed guard is reported as a
//     *ConflictError (matching ErrConflict) carrying the key and what etcd holds there,
//     read in the same transaction. A Batch names its first failing guard.
//   - Update never loses a concurrent write: it writes only if the key's ModRevision is
//     still the one fn saw, and otherwise calls fn again with the newer value, up to the
//     retry bound (WithRetries, default 100), with jittered backoff between attempts.
//   - Atomic runs fn in a concurrency.STM bound to ctx, with the same retry bound; out
//     of retries it returns a *ConflictError with the number of attempts.
//   - Bad arguments, a nil Option and an option the call does not use (WithIsolation
//     outside Atomic, WithLease in Atomic, WithRetries in the single-shot calls) are
//     refused with an error wrapping ErrInvalidArgument before anything is sent.
//   - Not guaranteed: that a write whose outcome was lost (ctx ended or the connection
//     dropped after etcd received it) did not happen. Such errors are not ErrConflict;
//     re-read before retrying.
//
// # Lifecycle
//
// Nothing here owns a goroutine or a resource: every call is synchronous, takes ctx
// first and returns when ctx ends.
//
//	rev, err := txn.Update(ctx, cli, "/counter", func(old []byte) ([]byte, error) {
//		n, _ := strconv.Atoi(string(old)) // old is nil when the key is absent
//		return []byte(strconv.Itoa(n + 1)), nil
//	})
package txn
