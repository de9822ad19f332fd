package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Item is a claimed item. Its claim lives on a lease of its own, of the visibility
// timeout; the consumer processes the item before Deadline (or extends it) and then
// calls Ack, or Nack to give it back.
type Item struct {
	c          *core
	id         string
	value      []byte
	priority   int
	deliveries int
	key        string
	claimKey   string
	claimRev   int64

	mu    sync.Mutex
	lease claimLease // the claim's lease; its deadline moves with Extend
}

// ID returns the item's ID: the one given to WithID, or one made up by Enqueue.
func (it *Item) ID() string { return it.id }

// Value returns the item's payload.
func (it *Item) Value() []byte { return it.value }

// Priority returns the priority the item was enqueued with (0 on a Queue).
func (it *Item) Priority() int { return it.priority }

// Deliveries returns how many times the item has been claimed, this time included: more
// than 1 means an earlier consumer crashed, was cut off, or called Nack.
func (it *Item) Deliveries() int { return it.deliveries }

// Deadline returns the earliest instant at which etcd may expire the claim and deliver
// the item to another consumer: the time the lease was requested (or last extended) plus
// its TTL, by this process's clock. Work that may outlast it should call Extend first.
func (it *Item) Deadline() time.Time {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.lease.deadline
}

// Ack marks the item processed and removes it from the queue. It succeeds only while the
// claim is ours; otherwise it returns ErrClaimLost and the item is, or will be, delivered
// again. Ack may be retried after an error whose outcome is unknown: while the claim
// lives, and for the dedup window after an applied Ack, a retry reports success if an
// earlier attempt was applied.
func (it *Item) Ack(ctx context.Context) error {
	dedup, err := it.c.dedupLease(ctx)
	if err != nil {
		return fmt.Errorf("queue: ack %s: %w", it.id, err)
	}
	// The ack record lets a retry of an Ack whose reply was lost find out that it was
	// applied, even after the claim is gone.
	//
	// The claim key stays, marked acknowledged, until this Queue's next claim transaction
	// (or its lease) removes it: a consumer that read the queue while the item was
	// claimed, and claims a younger one, compares that the item's claim still exists
	// (see dequeue), and the Ack must not make that claim fail.
	rev := strconv.FormatInt(it.claimRev, 10)
	resp, err := it.c.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(it.claimKey), "=", it.claimRev),
	).Then(
		clientv3.OpDelete(it.key),
		clientv3.OpPut(it.claimKey, ackedMark, clientv3.WithIgnoreLease()),
		clientv3.OpPut(it.c.ackKey(it.claimKey), rev, clientv3.WithLease(dedup)),
	).Else(clientv3.OpGet(it.c.ackKey(it.claimKey))).Commit()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		it.c.dropDedup(dedup)
		return it.Ack(ctx)
	}
	if err != nil {
		return fmt.Errorf("queue: ack %s: %w", it.id, err)
	}
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 && string(kvs[0].Value) == rev {
			it.forget()
			return nil // an earlier attempt was applied
		}
		it.forget()
		return fmt.Errorf("queue: ack %s: %w", it.id, ErrClaimLost)
	}
	it.forget()
	if it.c.addAcked(it.claimKey) {
		it.c.recycle(ctx, it.leaseNow())
	} else {
		it.c.revoke(ctx, it.leaseNow().id) // and the claim key with it
	}
	return nil
}

func (it *Item) leaseNow() claimLease {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.lease
}

// Nack gives the item back: it becomes visible to consumers at once, and its delivery
// counts towards WithMaxDeliveries. It returns ErrClaimLost if the claim was no longer
// ours.
func (it *Item) Nack(ctx context.Context) error {
	resp, err := it.c.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(it.claimKey), "=", it.claimRev),
		clientv3.Compare(clientv3.CreateRevision(it.key), ">", 0), // not acknowledged
	).Then(clientv3.OpDelete(it.claimKey)).Commit()
	if err != nil {
		return fmt.Errorf("queue: nack %s: %w", it.id, err)
	}
	it.forget()
	if !resp.Succeeded {
		return fmt.Errorf("queue: nack %s: %w", it.id, ErrClaimLost)
	}
	it.c.recycle(ctx, it.leaseNow())
	return nil
}

// release revokes the claim's lease, deleting the claim.
func (it *Item) release(ctx context.Context) error {
	if _, err := it.c.cli.Revoke(ctx, it.leaseNow().id); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return ErrClaimLost
		}
		return err
	}
	return nil
}

// Extend renews the claim for another visibility timeout from now and moves Deadline.
// It returns ErrClaimLost if the claim has already expired.
func (it *Item) Extend(ctx context.Context) error {
	sent := time.Now()
	resp, err := it.c.cli.KeepAliveOnce(ctx, it.leaseNow().id)
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			it.forget()
			return fmt.Errorf("queue: extend %s: %w", it.id, ErrClaimLost)
		}
		return fmt.Errorf("queue: extend %s: %w", it.id, err)
	}
	it.mu.Lock()
	it.lease.sent, it.lease.deadline = sent, sent.Add(time.Duration(resp.TTL)*time.Second)
	it.mu.Unlock()
	return nil
}

// forget drops the item from the claims Close gives back.
func (it *Item) forget() {
	it.c.mu.Lock()
	delete(it.c.held, it)
	it.c.mu.Unlock()
}
