package txn

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

var (
	// ErrConflict reports that a guard did not hold: the key changed under us, or an
	// optimistic loop ran out of retries.
	ErrConflict = errors.New("txn: conflict")
	// ErrNilClient is returned when the client or KV is nil.
	ErrNilClient = errors.New("txn: nil client")
	// ErrEmptyKey is returned when a key is empty.
	ErrEmptyKey = errors.New("txn: empty key")
	// ErrInvalidOption is returned when an option has a bad value.
	ErrInvalidOption = errors.New("txn: invalid option")
	// ErrEmptyBatch is returned by Batch.Commit when the batch has no operation.
	ErrEmptyBatch = errors.New("txn: empty batch")
)

// ConflictError is the ErrConflict of a single key: what etcd held when the guard failed.
type ConflictError struct {
	Key string
	// Current is the key as etcd held it, nil when the key was absent or not known.
	Current *mvccpb.KeyValue
	// Attempts is how many transactions were tried (1 for the single-shot calls).
	Attempts int
}

func (e *ConflictError) Error() string {
	switch {
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
