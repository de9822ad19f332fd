package barrier

import "errors"

var (
	// ErrInvalidArgument means an argument or option is out of range; the wrapping error
	// names it.
	ErrInvalidArgument = errors.New("barrier: invalid argument")
	// ErrHeld is returned by Hold when another Barrier holds the barrier.
	ErrHeld = errors.New("barrier: held by another")
	// ErrNotHeld is returned by Release when this Barrier does not hold the barrier.
	ErrNotHeld = errors.New("barrier: not held")
	// ErrNotEntered is returned by Leave without a successful Enter before it, and
	// ErrEntered by Enter when already inside.
	ErrNotEntered = errors.New("barrier: not entered")
	// ErrEntered is returned by Enter when this DoubleBarrier is already inside.
	ErrEntered = errors.New("barrier: already entered")
	// ErrLost means the lease that this participant's key lives on expired or was
	// revoked: etcd counts it out (the barrier it held is released; a double barrier no
	// longer counts it). The Barrier or DoubleBarrier cannot be used any more.
	ErrLost = errors.New("barrier: lease lost")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("barrier: closed")
)
