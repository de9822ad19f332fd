package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// owner is one participant's key in a queue under a directory: acquired, held with loss
// detection, released guarded by its create revision.
type owner struct {
	holder *ownership.Holder
	name   string // the lock's key, for errors
	dir    string // where the participant's key lives, ends in "/"
	nonce  string // makes the key unique to this participant, even on a shared lease

	mu      sync.Mutex
	busy    bool
	waiting string // our key while acquiring
	h       *ownership.Holding
	// seq numbers our attempts: it is part of our key's name, so that no name is used
	// twice and no delete of an earlier attempt, however late, can reach a later one.
	// Other participants never use our names at all.
	seq uint64
}

func (o *owner) nextKey(ses *ownership.Session) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	return fmt.Sprintf("%s%x-%s-%d", o.dir, int64(ses.Lease()), o.nonce, o.seq)
}

// holding returns the current holding if it still lasts.
func (o *owner) holding() (*ownership.Holding, error) {
	o.mu.Lock()
	h := o.h
	o.mu.Unlock()
	if h == nil {
		return nil, ErrNotHeld
	}
	if err := h.Check(); err != nil {
		return nil, err
	}
	return h, nil
}

func (o *owner) acquire(ctx context.Context, p ownership.Policy, wait bool) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	o.mu.Lock()
	if o.busy {
		o.mu.Unlock()
		return ErrBusy
	}
	if o.h != nil && o.h.Check() == nil {
		o.mu.Unlock()
		return ErrBusy
	}
	o.busy = true
	old := o.h
	o.mu.Unlock()
	if old != nil {
		old.Wait()
	}
	defer func() {
		o.mu.Lock()
		o.busy = false
		o.mu.Unlock()
	}()

	ses, err := o.holder.Get(ctx)
	if err != nil {
		return wrapErr(err)
	}
	key := o.nextKey(ses)
	o.mu.Lock()
	o.waiting = key
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.waiting = ""
		o.mu.Unlock()
	}()
	rev, blocked, err := ownership.Acquire(ctx, ses, key, "", p, wait)
	if err != nil {
		if blocked != nil {
			return &HeldError{Key: o.name, Holder: blocked.Key, Rev: blocked.Rev}
		}
		return wrapErr(err)
	}
	h := ownership.NewHolding(ses, key, rev)
	o.mu.Lock()
	o.h = h
	o.mu.Unlock()
	return nil
}

// release is the one Unlock path: a delete of our key, whose name no other holding
// ever has.
func (o *owner) release(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	o.mu.Lock()
	h := o.h
	o.mu.Unlock()
	if h == nil {
		return ErrNotHeld
	}
	err := h.Release(ctx)
	if err == nil {
		return nil
	}
	if h.Check() != nil {
		return notHeld(h.Err())
	}
	// Unknown whether the delete was applied: the holding stands, Unlock may be retried.
	return err
}

// abandon ends a holding at Close: the key is deleted within a bounded time, or in the
// background by the session.
func (o *owner) abandon() {
	o.mu.Lock()
	h := o.h
	o.mu.Unlock()
	if h != nil {
		h.Abandon()
	}
}

func (o *owner) key() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waiting != "" {
		return o.waiting
	}
	if o.h == nil {
		return ""
	}
	return o.h.Key()
}

func (o *owner) token() int64 {
	h, err := o.holding()
	if err != nil {
		return 0
	}
	return h.Rev()
}

func (o *owner) ownerCmp() clientv3.Cmp {
	h, err := o.holding()
	if err != nil {
		return ownership.Never(o.dir)
	}
	return h.Cmp()
}

func (o *owner) do(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	h, err := o.holding()
	if err != nil {
		return nil, notHeld(err)
	}
	resp, err := h.Txn(ctx, ops...)
	if errors.Is(err, ownership.ErrKeyLost) {
		return nil, notHeld(err)
	}
	return resp, err
}

func (o *owner) done() <-chan struct{} {
	o.mu.Lock()
	h := o.h
	o.mu.Unlock()
	if h == nil {
		return closedCh
	}
	return h.Done()
}

func (o *owner) err() error {
	o.mu.Lock()
	h := o.h
	o.mu.Unlock()
	if h == nil {
		return nil
	}
	return lost(h.Err())
}
