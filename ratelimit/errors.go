package ratelimit

import "errors"

var (
	// ErrInvalidArgument means an argument or option is out of range; the wrapping error
	// names it.
	ErrInvalidArgument = errors.New("ratelimit: invalid argument")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("ratelimit: closed")
	// ErrMalformed means the bucket key holds something this package did not write.
	ErrMalformed = errors.New("ratelimit: malformed bucket")
)
