package config

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned by getters for a key that is not set.
	ErrNotFound = errors.New("config: key not found")
	// ErrType is matched (errors.Is) by every *TypeError.
	ErrType = errors.New("config: wrong type")
	// ErrInvalidArgument is returned for a nil client, an empty prefix, a nil callback, a
	// nil Option, an option with a bad value, or an option the constructor does not use.
	// The error wrapping it names the argument. Every ErrInvalidKey matches it too.
	ErrInvalidArgument = errors.New("config: invalid argument")
	// ErrInvalidKey is returned for an empty or malformed key or flag name; it also
	// matches ErrInvalidArgument.
	ErrInvalidKey = errors.New("config: invalid key")
	// ErrNotReady is returned by getters when the first listing did not arrive within the
	// ready timeout (WithReadyTimeout).
	ErrNotReady = errors.New("config: not ready")
	// ErrSnapshotNotFound is returned by Restore for an unknown version.
	ErrSnapshotNotFound = errors.New("config: snapshot not found")
	// ErrConflict is returned when an atomic operation lost to concurrent writers too
	// many times in a row.
	ErrConflict = errors.New("config: too many concurrent changes")
	// ErrClosed is returned by calls on a closed Store or Flags.
	ErrClosed = errors.New("config: closed")
	// ErrFlagNotFound is returned when evaluating a flag that is not defined.
	ErrFlagNotFound = errors.New("config: flag not found")
	// ErrInvalidFlag is matched by every *FlagError: a flag definition that cannot be
	// evaluated (bad JSON, unknown variant, rollout not adding up to 100).
	ErrInvalidFlag = errors.New("config: invalid flag")
)

// TypeError reports a value that is not valid JSON or not of the type a getter expects.
// The rest of the Store is unaffected. It matches ErrType with errors.Is.
type TypeError struct {
	Key  string // the key as given to the getter
	Want string // "string", "int", "bool", "float", "duration", or the Go type for Decode
	Got  string // what the stored value is: "invalid JSON", "string", "number", ...
	Err  error  // the underlying parse error, if any
}

func (e *TypeError) Error() string {
	msg := fmt.Sprintf("config: key %q: want %s, got %s", e.Key, e.Want, e.Got)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is ErrType.
func (e *TypeError) Is(target error) bool { return target == ErrType }

// Unwrap returns the underlying parse error.
func (e *TypeError) Unwrap() error { return e.Err }

// FlagError reports a flag definition that cannot be evaluated. It matches ErrInvalidFlag.
type FlagError struct {
	Flag   string
	Reason string
}

func (e *FlagError) Error() string {
	return fmt.Sprintf("config: invalid flag %q: %s", e.Flag, e.Reason)
}

// Is reports whether target is ErrInvalidFlag.
func (e *FlagError) Is(target error) bool { return target == ErrInvalidFlag }
