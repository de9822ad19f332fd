package watch

import "errors"

var (
	// ErrClosed reports that the Watcher or Cache was closed.
	ErrClosed = errors.New("watch: closed")
	// ErrClientClosed reports that the etcd client was closed under a Watcher or Cache.
	ErrClientClosed = errors.New("watch: client closed")
	// ErrNilClient is returned by the constructors when the client is nil.
	ErrNilClient = errors.New("watch: nil client")
	// ErrEmptyKey is returned by the constructors when the key or prefix is empty.
	ErrEmptyKey = errors.New("watch: empty key or prefix")
	// ErrInvalidOption is returned by the constructors when an option has a bad value.
	ErrInvalidOption = errors.New("watch: invalid option")
)
