package ownership

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Claim is one participant — a lock's Mutex or permit, an election's Candidate — and its
// succession of holdings of a key under dir: Acquire (acquire.go), then a Holding, then
// Release. Its methods are safe for concurrent use.
type Claim struct {
	holder *Holder
	dir    string // ends in "/"
	nonce  string // makes our names unique, even on a shared lease
	val    string // our key's value
	p      Policy
	v      *Vocab

	ctx    context.Context // ends at Close: no Acquire outlives it
	cancel context.CancelFunc

	mu      sync.Mutex
	busy    bool
	seq     uint64 // numbers our attempts; part of our key's name, never used twice
	waiting string // our key while acquiring
	h       *Holding
}

// NewClaim returns a participant with keys under dir (ending in "/") whose value is val,
// on the leases of holder, owning as p says, with errors named by v.
func NewClaim(holder *Holder, dir, val string, p Policy, v *Vocab) *Claim {
	var b [6]byte
	_, _ = rand.Read(b[:])
	c := &Claim{holder: holder, dir: dir, nonce: hex.EncodeToString(b[:]), val: val, p: p, v: v}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// closing reports whether the Claim or its Holder was closed.
func (c *Claim) closing() bool { return c.ctx.Err() != nil || c.holder.ctx.Err() != nil }

// Close ends an Acquire in flight (it returns Vocab.Closed, its key dropped) and the
// current holding (Abandon); every later Acquire returns Vocab.Closed. Closing the
// Holder ends Acquires in flight the same way, even when its session is shared and
// lives on.
func (c *Claim) Close() {
	c.cancel()
	c.Abandon()
}

func (c *Claim) closedErr() error {
	if c.closing() {
		return ErrClosed
	}
	return nil
}

// Holding returns the current holding while it lasts, else an error wrapping
// Vocab.NotHeld (and the cause of a loss).
func (c *Claim) Holding() (*Holding, error) {
	h := c.Last()
	if h == nil {
		return nil, c.v.notHeld(nil)
	}
	if err := h.Check(); err != nil {
		return nil, c.v.notHeld(h.Err())
	}
	return h, nil
}

// Held reports whether a holding lasts, as far as is known without I/O.
func (c *Claim) Held() bool {
	_, err := c.Holding()
	return err == nil
}

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
// applies it; otherwise the error wraps Vocab.NotHeld and the holding ends.
func (c *Claim) Do(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", c.v.Invalid)
	}
	h, err := c.Holding()
	if err != nil {
		return nil, err
	}
	resp, err := h.Txn(ctx, ops...)
	if errors.Is(err, ErrKeyLost) {
		return nil, c.v.notHeld(err)
	}
	return resp, c.v.err(err)
}

// Done returns a channel closed when the current holding ends (closed when none).
func (c *Claim) Done() <-chan struct{} {
	if h := c.Last(); h != nil {
		return h.Done()
	}
	return closedCh
}

// Err returns nil while the current holding lasts, after a release and before the first
// holding, and after a loss an error wrapping Vocab.Lost and the cause.
func (c *Claim) Err() error {
	if h := c.Last(); h != nil {
		return c.v.Loss(h.Err())
	}
	return nil
}

// Release ends the current holding by deleting its key (Holding.Release). Its error
// wraps Vocab.NotHeld when nothing was held (or it was lost: the cause is wrapped too);
// any other error leaves the holding standing, and Release may be retried.
func (c *Claim) Release(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", c.v.Invalid)
	}
	h, err := c.Holding()
	if err != nil {
		return err
	}
	if err := h.Release(ctx); err != nil {
		if h.Check() != nil {
			return c.v.notHeld(h.Err())
		}
		return c.v.err(err)
	}
	return nil
}

// Abandon ends the current holding without waiting for etcd (Holding.Abandon).
func (c *Claim) Abandon() {
	if h := c.Last(); h != nil {
		h.Abandon()
	}
}

// Vocab names the errors of a Claim in its user's terms, so that lock and election hand
// them on as they are.
type Vocab struct {
	Pkg     string // prefixes this package's errors that pass through: "lock: session lost"
	NotHeld error  // nothing is held (wrapping the cause of a loss, if any)
	Lost    error  // what Err returns after a loss (wrapping its cause)
	Closed  error  // the Holder was closed
	Invalid error  // a bad argument
	Busy    error  // an Acquire while the holding lasts or another Acquire runs
	// Blocked is the error of a non-waiting Acquire that found the key of create
	// revision rev ahead of ours.
	Blocked func(key string, rev int64) error
}

func (v *Vocab) err(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClosed):
		return v.Closed
	case errors.Is(err, ErrSessionLost), errors.Is(err, ErrKeyLost):
		return fmt.Errorf("%s: %w", v.Pkg, err)
	}
	return err
}

func (v *Vocab) notHeld(cause error) error {
	if cause == nil {
		return v.NotHeld
	}
	return fmt.Errorf("%w: %w", v.NotHeld, cause)
}

// Loss returns the error of a holding that ended for cause: nil after a release.
func (v *Vocab) Loss(cause error) error {
	if cause == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", v.Lost, cause)
}
