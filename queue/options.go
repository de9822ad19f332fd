package queue

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Option configures a Queue or PriorityQueue.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	// visibility is the TTL of a claim's lease: how long a dequeued item stays invisible
	// to other consumers without Extend. Default 30s.
	visibility time.Duration
	// maxDeliveries moves an item to the dead letters instead of delivering it again once
	// it has been delivered this many times. Default 0: never.
	maxDeliveries int
	// dedupWindow is how long an ID given to Enqueue keeps a second Enqueue of the same
	// ID from adding an item. Default 1h.
	dedupWindow time.Duration
	// logger receives best-effort failures (lease revokes). Default zap.NewNop().
	logger *zap.Logger
}

func defaults() options {
	return options{
		visibility:  30 * time.Second,
		dedupWindow: time.Hour,
		logger:      zap.NewNop(),
	}
}

// maxTTL is etcd's largest lease TTL (9e9 seconds, about 285 years): the visibility
// timeout and the dedup window are lease TTLs.
const maxTTL = 9_000_000_000 * time.Second

func (o *options) validate() error {
	if o.visibility < time.Second {
		return fmt.Errorf("%w: WithVisibilityTimeout: %v is under 1s", ErrInvalidArgument, o.visibility)
	}
	if o.visibility > maxTTL {
		return fmt.Errorf("%w: WithVisibilityTimeout: %v is over etcd's largest lease TTL %v", ErrInvalidArgument, o.visibility, maxTTL)
	}
	if o.maxDeliveries < 0 {
		return fmt.Errorf("%w: WithMaxDeliveries: %d is negative", ErrInvalidArgument, o.maxDeliveries)
	}
	if o.dedupWindow < 2*time.Second {
		return fmt.Errorf("%w: WithDedupWindow: %v is under 2s", ErrInvalidArgument, o.dedupWindow)
	}
	if o.dedupWindow > maxTTL {
		return fmt.Errorf("%w: WithDedupWindow: %v is over etcd's largest lease TTL %v", ErrInvalidArgument, o.dedupWindow, maxTTL)
	}
	if o.logger == nil {
		return fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	}
	return nil
}

// WithVisibilityTimeout sets how long a dequeued item stays claimed without Extend: the
// TTL of the lease its claim lives on, rounded up to whole seconds. A consumer that
// crashes or is cut off loses the item after it, and the item is delivered again.
// Default 30s; at least 1s.
func WithVisibilityTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.visibility = d })
}

// WithMaxDeliveries moves an item to the dead letters (see DeadLetters) instead of
// delivering it an (n+1)th time: an item whose consumers keep crashing or calling Nack
// stops circulating. Default 0: items are delivered until acknowledged.
func WithMaxDeliveries(n int) Option {
	return optionFunc(func(o *options) { o.maxDeliveries = n })
}

// WithDedupWindow sets how long an ID passed to Enqueue with WithID is remembered: within
// the window, enqueueing the same ID again adds nothing (whether or not the first item
// was acknowledged since). The window is kept on a lease shared by the IDs the Queue
// writes in one half-window, so an ID is remembered for at least half the window and at
// most the whole of it. Default 1h; at least 2s.
func WithDedupWindow(d time.Duration) Option {
	return optionFunc(func(o *options) { o.dedupWindow = d })
}

// WithLogger sets the logger for best-effort cleanup failures. Default: zap.NewNop().
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// EnqueueOption configures one Enqueue.
type EnqueueOption interface{ applyEnqueue(*enqueueOptions) }

type enqueueFunc func(*enqueueOptions)

func (f enqueueFunc) applyEnqueue(o *enqueueOptions) { f(o) }

type enqueueOptions struct {
	id    string
	hasID bool
}

// WithID gives the item an ID of the caller's choosing, which makes Enqueue idempotent:
// a second Enqueue of the same ID within the dedup window (WithDedupWindow) adds nothing
// and returns the ID with a nil error, so a producer may retry an Enqueue whose outcome it
// does not know. Without it, Enqueue makes up a random ID. The ID must not be empty.
func WithID(id string) EnqueueOption {
	return enqueueFunc(func(o *enqueueOptions) { o.id, o.hasID = id, true })
}
