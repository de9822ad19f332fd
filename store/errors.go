package store

import "errors"

var (
	// ErrInvalidArgument means an argument is unusable; the error's message names it.
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrNotFound means no record has the given ID.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt means the state file is not a database this package wrote, or holds a
	// record that cannot be decoded. The file is left as it is.
	ErrCorrupt = errors.New("store: state file corrupt")
	// ErrLocked means another process holds the state file.
	ErrLocked = errors.New("store: state file locked by another process")
)
