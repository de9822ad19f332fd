package queue

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PriorityQueue is a work queue whose items carry an integer priority: Dequeue claims an
// item of the lowest priority number present, and within a priority the oldest. It has
// the same delivery guarantees as Queue.
type PriorityQueue struct{ c *core }

// NewPriority returns a PriorityQueue on the keys under prefix. It does not block.
func NewPriority(cli *clientv3.Client, prefix string, opts ...Option) (*PriorityQueue, error) {
	c, err := newCore(cli, prefix, opts)
	if err != nil {
		return nil, err
	}
	return &PriorityQueue{c: c}, nil
}

// Enqueue adds value with the given priority (lower numbers are delivered first; any int)
// and returns the item's ID. With WithID the call is idempotent: see WithID.
func (q *PriorityQueue) Enqueue(ctx context.Context, priority int, value []byte, opts ...EnqueueOption) (string, error) {
	return q.c.enqueue(ctx, priority, value, opts)
}

// Dequeue claims the oldest unclaimed item of the lowest priority number; it waits (on a
// watch) until there is one or ctx ends. See Queue.Dequeue.
func (q *PriorityQueue) Dequeue(ctx context.Context) (*Item, error) { return q.c.dequeue(ctx) }

// Len returns the number of items not yet acknowledged, claimed or not.
func (q *PriorityQueue) Len(ctx context.Context) (int, error) { return q.c.len(ctx) }

// DeadLetters returns the items moved aside after WithMaxDeliveries deliveries.
func (q *PriorityQueue) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	return q.c.deadLetters(ctx)
}

// DeleteDeadLetter removes one dead letter.
func (q *PriorityQueue) DeleteDeadLetter(ctx context.Context, d DeadLetter) error {
	return q.c.deleteDeadLetter(ctx, d)
}

// Close gives back the claims not yet acknowledged; see Queue.Close.
func (q *PriorityQueue) Close() error { return q.c.close() }
