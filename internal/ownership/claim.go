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

var (
	// ErrBusy reports an Acquire while another Acquire of the same Claim runs.
	ErrBusy = errors.New("acquisition in progress")
	// ErrHeld reports an Acquire while the Claim's holding still lasts.
	ErrHeld = errors.New("already held")
)

// Vocab names the errors of a Claim in its user's terms, so that lock and election hand
// them on as they are.
type Vocab struct {
	Pkg     string // prefixes this package's errors that pass through: "lock: session lost"
	NotHeld error  // nothing is held (wrapping the cause of a loss, if any)
	Lost    error  // what Err returns after a loss (wrapping its cause)
	Closed  error  // the Holder was closed
	Invalid error  // a bad argument
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
// on the leases of holder, with errors named by v.
func NewClaim(holder *Holder, dir, val string, v *Vocab) *Claim {
	var b [6]byte
	_, _ = rand.Read(b[:])
	c := &Claim{holder: holder, dir: dir, nonce: hex.EncodeToString(b[:]), val: val, v: v}
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

// Acquire starts a new holding, as Policy p says (waiting for it when wait is set): it
// puts a key of a name never used before under the Holder's lease and, when wait is set,
// blocks until the policy says it is owned. Success is returned only right after a read
// that found the key with its create revision, with the lease known to be alive. On
// failure or cancellation the key is dropped (Session.Drop): deleted before Acquire
// returns, or else in the background until the delete lands or the lease is gone. It
// returns ErrHeld while the current holding lasts and ErrBusy during another Acquire; a
// non-waiting Acquire that finds others ahead returns ErrBlocked with who blocked it.
func (c *Claim) Acquire(ctx context.Context, p Policy, wait bool) (*Blocked, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", c.v.Invalid)
	}
	if c.closing() {
		return nil, c.v.Closed
	}
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
	// Close, of the Claim or of its Holder, ends the acquisition: one that went on would
	// hold for a user who has closed, on a lease that may live on (a shared session).
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	defer context.AfterFunc(c.holder.ctx, cancel)()
	ses, err := c.holder.Get(cctx)
	if err == nil {
		err = ses.Err()
	}
	if err != nil {
		return nil, c.v.err(firstErr(ctx.Err(), c.closedErr(), err))
	}
	c.mu.Lock()
	c.seq++
	key := fmt.Sprintf("%s%x-%s-%d", c.dir, int64(ses.Lease()), c.nonce, c.seq)
	c.waiting = key
	c.mu.Unlock()
	// Nothing made while acquiring may outlive the session: a reply lost with the
	// connection must not keep the caller waiting past the session's loss.
	bctx, stop := ses.Bind(cctx)
	rev, blocked, err := acquire(bctx, ses, key, c.val, p, wait)
	stop()
	if blocked != nil {
		return blocked, err
	}
	if err != nil {
		// Report the caller's cancellation first, then Close, then a loss of the session.
		return nil, c.v.err(firstErr(ctx.Err(), c.closedErr(), ses.Err(), err))
	}
	h := NewHolding(ses, key, rev)
	c.mu.Lock()
	if c.closing() {
		// Closed as we acquired: Close could not see this holding, so give it up.
		c.mu.Unlock()
		h.Abandon()
		return nil, c.v.Closed
	}
	c.h = h
	c.mu.Unlock()
	return nil, nil
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
