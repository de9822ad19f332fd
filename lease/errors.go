package lease

import "errors"

var (
	// ErrLost reports that the lease is gone: revoked, expired, or not renewed within its
	// TTL.
	ErrLost = errors.New("lease: lost")
	// ErrClosed reports that the Keeper was closed.
	ErrClosed = errors.New("lease: keeper closed")
	// ErrClientClosed reports that the etcd client was closed under the Keeper; the
	// lease is then lost for good (with ErrLost), re-grant or not.
	ErrClientClosed = errors.New("lease: client closed")
	// ErrInvalidArgument is returned by New for a bad argument or option (nil client,
	// TTL under one second, nil option, nil logger), and by TTL and CloseContext for a
	// nil context; the message names the argument.
	ErrInvalidArgument = errors.New("lease: invalid argument")
)
