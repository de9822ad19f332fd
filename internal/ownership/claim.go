package ownership

import (
	"context"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	// ErrNotHeld reports that a Claim holds nothing (never acquired, released, or lost;
	// the cause of a loss is wrapped too).
	ErrNotHeld = errors.New("not held")
	// ErrBusy reports an Acquire while another Acquire of the same Claim runs.
	ErrBusy = errors.New("acquisition in progress")
	// ErrHeld reports an Acquire while the Claim's holding still lasts.
	ErrHeld = errors.New("already held")
)

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Claim is one participant — a lock's Mutex or permit, an election's Candidate — and its
// succession of holdings of a key under dir. It is what lock and election are built on:
//
//   - acquire: Acquire puts a key of a name never used before under the Holder's lease
//     and waits as the Policy says (see Acquire in acquire.go);
//   - hold: the Holding it starts fences writes (Cmp, Do), and says when it ends (Done,
//     Err), noticing a loss locally from the lease's deadline and asynchronously from a
//     watch on the key (holding.go);
//   - release: Release deletes the key, the one way out; Abandon leaves the delete to the
//     session when it may not wait (Close).
//
// Its methods are safe for concurrent use.
type Claim struct {
	holder *Holder
	dir    string // ends in "/"
	nonce  string // makes our names unique, even on a shared lease
	val    string // our key's value

	mu      sync.Mutex
	busy    bool
	seq     uint64 // numbers our attempts; part of our key's name, never used twice
	waiting string // our key while acquiring
	h       *Holding
}

// NewClaim returns a participant with keys under dir (ending in "/") whose value is val,
// on the leases of holder.
func NewClaim(holder *Holder, dir, nonce, val string) *Claim {
	return &Claim{holder: holder, dir: dir, nonce: nonce, val: val}
}

// Acquire starts a new holding, as Policy p says (waiting for it when wait is set). It
// returns ErrHeld while the current holding lasts and ErrBusy during another Acquire; a
// non-waiting Acquire that finds others ahead returns ErrBlocked with who blocked it.
func (c *Claim) Acquire(ctx context.Context, p Policy, wait bool) (*Blocked, error) {
	c.mu.Lock()
	if c.busy {
		c.mu.Unlock()
		return nil, ErrBusy
	}
	if c.h != nil && c.h.Check() == nil {
		c.mu.Unlock()
		return nil, ErrHeld
	}
	c.busy = true
	old := c.h
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.busy, c.waiting = false, ""
		c.mu.Unlock()
	}()
	if old != nil {
		old.Wait()
	}
	ses, err := c.holder.Get(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.seq++
	key := fmt.Sprintf("%s%x-%s-%d", c.dir, int64(ses.Lease()), c.nonce, c.seq)
	c.waiting = key
	c.mu.Unlock()
	rev, blocked, err := Acquire(ctx, ses, key, c.val, p, wait)
	if err != nil {
		return blocked, err
	}
	h := NewHolding(ses, key, rev)
	c.mu.Lock()
	c.h = h
	c.mu.Unlock()
	return nil, nil
}

// Holding returns the current holding while it lasts, else an error wrapping ErrNotHeld
// (and the cause of a loss).
func (c *Claim) Holding() (*Holding, error) {
	c.mu.Lock()
	h := c.h
	c.mu.Unlock()
	if h == nil {
		return nil, notHeld(nil)
	}
	if err := h.Check(); err != nil {
		return nil, notHeld(h.Err())
	}
	return h, nil
}

// NotHeldError is the error of a Claim that holds nothing: it matches ErrNotHeld and
// unwraps to the cause of the loss, if any, so that callers can name both in their terms.
type NotHeldError struct{ Cause error }

func (e *NotHeldError) Error() string {
	if e.Cause == nil {
		return ErrNotHeld.Error()
	}
	return ErrNotHeld.Error() + ": " + e.Cause.Error()
}

// Is makes errors.Is(err, ErrNotHeld) true.
func (e *NotHeldError) Is(target error) bool { return target == ErrNotHeld }

func (e *NotHeldError) Unwrap() error { return e.Cause }

func notHeld(cause error) error { return &NotHeldError{Cause: cause} }

// Last returns the current or last holding, or nil before the first.
func (c *Claim) Last() *Holding {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.h
}

// Key returns our key while acquiring, else that of the current or last holding ("" before
// the first Acquire).
func (c *Claim) Key() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting != "" {
		return c.waiting
	}
	if c.h == nil {
		return ""
	}
	return c.h.Key()
}

// Token returns the create revision of the current holding's key, 0 when none lasts.
func (c *Claim) Token() int64 {
	h, err := c.Holding()
	if err != nil {
		return 0
	}
	return h.Rev()
}

// Cmp returns the fence of the current holding, or one that never holds.
func (c *Claim) Cmp() clientv3.Cmp {
	h, err := c.Holding()
	if err != nil {
		return Never(c.dir)
	}
	return h.Cmp()
}

// Do applies ops in one transaction only if the current holding still lasts when etcd
// applies it; otherwise the error wraps ErrNotHeld and the holding ends.
func (c *Claim) Do(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	h, err := c.Holding()
	if err != nil {
		return nil, err
	}
	resp, err := h.Txn(ctx, ops...)
	if errors.Is(err, ErrKeyLost) {
		return nil, notHeld(err)
	}
	return resp, err
}

// Done returns a channel closed when the current holding ends (closed when none).
func (c *Claim) Done() <-chan struct{} {
	if h := c.Last(); h != nil {
		return h.Done()
	}
	return closedCh
}

// Err returns why the current or last holding was lost, nil while it lasts or after a
// release.
func (c *Claim) Err() error {
	if h := c.Last(); h != nil {
		return h.Err()
	}
	return nil
}

// Release ends the current holding by deleting its key (Holding.Release). Its error
// wraps ErrNotHeld when nothing was held (or it was lost: the cause is wrapped too); any
// other error leaves the holding standing, and Release may be retried.
func (c *Claim) Release(ctx context.Context) error {
	h, err := c.Holding()
	if err != nil {
		return err
	}
	if err := h.Release(ctx); err != nil {
		if h.Check() != nil {
			return notHeld(h.Err())
		}
		return err
	}
	return nil
}

// Abandon ends the current holding without waiting for etcd (Holding.Abandon).
func (c *Claim) Abandon() {
	if h := c.Last(); h != nil {
		h.Abandon()
	}
}
