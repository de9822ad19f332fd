package watch

import "errors"

var (
	// ErrClosed reports that the Watcher or Cache was closed.
	ErrClosed = errors.New("watch: closed")
	// ErrClientClosed reports that the etcd client was closed under a Watcher or Cache.
	ErrClientClosed = errors.New("watch: client closed")
	// ErrInvalidArgument is returned by the constructors for a nil client, an empty key
	// or prefix, a nil Option, an option with a bad value, or an option the constructor
	// does not use. The error wrapping it names the argument.
	ErrInvalidArgument = errors.New("watch: invalid argument")
)
