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
	// ErrNilClient is returned by New when the client is nil.
	ErrNilClient = errors.New("lease: nil client")
	// ErrInvalidTTL is returned by New when the TTL is under one second.
	ErrInvalidTTL = errors.New("lease: ttl must be at least 1s")
)
