package lock

import (
	"errors"
	"fmt"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

var (
	// ErrLocked is returned by TryLock when another holder has the lock; the error is a
	// *HeldError naming the holder.
	ErrLocked = errors.New("lock: held by another")
	// ErrNotHeld is returned by Unlock and Do when we do not (or no longer) own the lock.
	ErrNotHeld = errors.New("lock: not held")
	// ErrLost is what Err returns after ownership was lost: the key was deleted or the
	// session was lost. It wraps the cause.
	ErrLost = errors.New("lock: ownership lost")
	// ErrSessionLost reports that the lease under the lock expired, was revoked, or could
	// not be renewed for long enough that etcd may have expired it.
	ErrSessionLost = ownership.ErrSessionLost
	// ErrBusy is returned by Lock or TryLock on a value that already holds the lock or is
	// acquiring it: a Mutex is not re-entrant.
	ErrBusy = errors.New("lock: already held or being acquired by this value")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("lock: closed")
	// ErrInvalidArgument reports a bad argument or option.
	ErrInvalidArgument = errors.New("lock: invalid argument")
)

// HeldError is returned by TryLock when another holder has the lock. It matches
// ErrLocked with errors.Is.
type HeldError struct {
	Key    string // the lock's key
	Holder string // the holder's key under it
	Rev    int64  // the holder's create revision (its fencing token)
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lock: %s held by %s (token %d)", e.Key, e.Holder, e.Rev)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *HeldError) Is(target error) bool { return target == ErrLocked }

// vocab names the errors of the claims (internal/ownership) on the lock name in this
// package's terms.
func vocab(name string) *ownership.Vocab {
	return &ownership.Vocab{
		Pkg: "lock", NotHeld: ErrNotHeld, Lost: ErrLost, Closed: ErrClosed, Invalid: ErrInvalidArgument, Busy: ErrBusy,
		Blocked: func(holder string, rev int64) error { return &HeldError{Key: name, Holder: holder, Rev: rev} },
	}
}
