// Package queue is a work queue on etcd with at-least-once delivery: a consumer claims an
// item for a visibility timeout, and an item whose consumer crashes or is cut off is
// delivered again.
//
// Queue delivers in enqueue order; PriorityQueue delivers the lowest priority number
// first, and in enqueue order within a priority. Dequeue claims an item with a claim key
// on a lease of its own (the visibility timeout, WithVisibilityTimeout); the consumer
// then calls Ack once it has processed the item, Nack to give it back, or Extend to keep
// it longer. Unlike etcd's contrib recipes, nothing is deleted before it is acknowledged.
//
// # Guarantees
//
//   - At most one live claim per item: a claim is created only if none exists, in the
//     same transaction that checks the item is unchanged, so two consumers never hold
//     the same item at once. Deadline is never later than the instant etcd could expire
//     the claim, so a consumer that stops work by its Deadline never overlaps the next.
//   - At least once: an item leaves the queue only through an Ack made while its claim
//     is alive (or through the dead letters). A consumer that crashes, hangs or is cut off
//     from etcd loses its claim when the lease expires, and the item is delivered again.
//     Work is therefore done at least once, and more than once if a consumer overruns its
//     Deadline or crashes after the work but before Ack: make processing idempotent.
//   - Order: an item is claimed only if, at the revision of the claim, every item ahead
//     of it (enqueued earlier with the same priority, or of a lower priority number) is
//     claimed; the claim's transaction compares exactly that, and a consumer whose claim
//     fails reads the head again and chooses afresh. So no consumer claims an item while
//     an older one is visible and unclaimed, however many consumers there are. An item
//     given back (Nack, an expired claim, Close) keeps its place, ahead of every younger
//     item still waiting. Claims are in order, not the end of work: consumers run
//     concurrently, and a redelivered item is processed after younger ones claimed
//     while it was held. The transaction compares the claims of the nearest 100 items
//     ahead (fewer if etcd's --max-txn-ops is under 104); of more items ahead, those
//     further away are known claimed as of the read the choice was made from, one
//     round trip before the claim.
//   - Enqueue with WithID is idempotent within the dedup window. Ack leaves a record on
//     the dedup lease, so a retry of an Ack whose reply was lost reports success, even
//     after the claim is gone; an Ack made after the claim expired returns ErrClaimLost.
//   - With WithMaxDeliveries(n), an item that was delivered n times without an Ack is
//     moved to the dead letters instead of being delivered again.
//   - Consumers with nothing to do wait on a watch (an item added, a claim gone), not by
//     polling. Enqueue, the claim and Ack are one etcd transaction each when
//     uncontended, plus a read per Dequeue; a claim that loses a race (or finds an
//     older item visible again) costs one more transaction, which also reads the head
//     for the next choice. Consumers contend for the oldest visible item, so claims are
//     made one at a time across the fleet: with several consumers, claim throughput is
//     about one claim per etcd write, not one per consumer. A claim reuses the lease
//     of one of this Queue's finished claims (renewed first, one keep-alive, once past
//     the first eighth of its TTL) and grants a new one when there is none. An
//     acknowledged item's claim key stays, marked, until this Queue's next claim
//     transaction (or the next few: each deletes at most 32, fewer under a small
//     --max-txn-ops) or the end of its lease removes it, so that an Ack does not make
//     other consumers' claims fail.
//   - Not guaranteed: a consumer that goes on working past Deadline may overlap the next
//     consumer of the item; etcd extends lease TTLs when its leader changes, so a crashed
//     consumer's item can stay invisible for longer than the timeout.
//
// # Lifecycle
//
// New and NewPriority do not block and start no goroutine. An Item's claim ends with Ack,
// Nack, or the expiry of its lease. Close gives back the claims of this Queue's items
// that were neither acknowledged nor given back (so they are delivered again at once),
// waits at most two seconds for etcd, and is idempotent; later calls return ErrClosed. The
// keys under the prefix belong to the queue; IDs given to WithID live on a lease of the
// dedup window and need no cleanup; dead letters stay until DeleteDeadLetter.
//
//	q, err := queue.New(cli, "/jobs/resize")
//	if err != nil { return err }
//	defer q.Close()
//	_, err = q.Enqueue(ctx, payload, queue.WithID(upload.ID)) // safe to retry
//	...
//	it, err := q.Dequeue(ctx) // waits for work
//	if err != nil { return err }
//	if err := resize(ctx, it.Value()); err != nil {
//		return it.Nack(ctx) // try again, elsewhere
//	}
//	return it.Ack(ctx)
package queue
