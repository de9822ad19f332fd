package txn

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

var (
	// ErrConflict reports that a guard did not hold: the key changed under us, or an
	// optimistic loop ran out of retries. Every such error is a *ConflictError.
	ErrConflict = errors.New("txn: conflict")
	// ErrInvalidArgument is returned for a nil client, an empty key, a nil function, a
	// nil Option, an option with a bad value, or an option the call does not use. The
	// error wrapping it names the argument.
	ErrInvalidArgument = errors.New("txn: invalid argument")
	// ErrEmptyBatch is returned by Batch.Commit when the batch has no operation; it wraps
	// ErrInvalidArgument.
	ErrEmptyBatch = fmt.Errorf("%w: empty batch", ErrInvalidArgument)
)

// ConflictError is an ErrConflict: which key's guard failed and what etcd held there.
type ConflictError struct {
	// Key is the key whose guard failed: for a Batch the first failing guard, for a
	// range comparison the first key in the range that failed it. Empty for Atomic,
	// whose read set concurrency.STM does not expose.
	Key string
	// Current is the key as etcd held it, nil when the key was absent or not known.
	Current *mvccpb.KeyValue
	// Attempts is how many transactions were tried (1 for the single-shot calls).
	Attempts int
}

func (e *ConflictError) Error() string {
	switch {
	case e.Key == "":
		return fmt.Sprintf("txn: conflict after %d attempts", e.Attempts)
	case e.Attempts > 1:
		return fmt.Sprintf("txn: conflict on %q after %d attempts", e.Key, e.Attempts)
	case e.Current == nil:
		return fmt.Sprintf("txn: conflict on %q (absent)", e.Key)
	default:
		return fmt.Sprintf("txn: conflict on %q (mod revision %d)", e.Key, e.Current.ModRevision)
	}
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
