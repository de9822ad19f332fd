package breaker

import "errors"

var (
	// ErrInvalidArgument means an argument or option is out of range; the wrapping error
	// names it.
	ErrInvalidArgument = errors.New("breaker: invalid argument")
	// ErrOpen is returned by Do, without calling the function, while the breaker is open,
	// or half-open with the probe taken by another call or instance.
	ErrOpen = errors.New("breaker: open")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("breaker: closed")
)
