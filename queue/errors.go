package queue

import "errors"

var (
	// ErrInvalidArgument means an argument or option is out of range; the wrapping error
	// names it.
	ErrInvalidArgument = errors.New("queue: invalid argument")
	// ErrClosed is returned by calls on a closed Queue or PriorityQueue.
	ErrClosed = errors.New("queue: closed")
	// ErrClaimLost means this consumer no longer holds the item: its claim expired (the
	// visibility timeout passed without Extend), was released by Nack or Close, or the
	// item was acknowledged already. The item is, or will again be, visible to others.
	ErrClaimLost = errors.New("queue: claim lost")
)
