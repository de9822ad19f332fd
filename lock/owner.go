package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

func nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// owner is one participant in a queue under a directory — a Mutex, one side of an
// RWMutex, a Permit — in this package's terms: an ownership.Claim (acquire, hold,
// release) with the lock's errors.
type owner struct {
	claim *ownership.Claim
	name  string // the lock's key, for errors
}

func newOwner(h *ownership.Holder, name, dir, nonce string) owner {
	return owner{claim: ownership.NewClaim(h, dir, nonce, ""), name: name}
}

func (o *owner) acquire(ctx context.Context, p ownership.Policy, wait bool) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	blocked, err := o.claim.Acquire(ctx, p, wait)
	switch {
	case err == nil:
		return nil
	case blocked != nil:
		return &HeldError{Key: o.name, Holder: blocked.Key, Rev: blocked.Rev}
	case errors.Is(err, ownership.ErrBusy), errors.Is(err, ownership.ErrHeld):
		return ErrBusy
	}
	return wrapErr(err)
}

// release is the one Unlock path (ownership.Claim.Release): a delete of our key, whose
// name no other holding ever has.
func (o *owner) release(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	return wrapErr(o.claim.Release(ctx))
}

// abandon ends a holding at Close: the key is deleted within a bounded time, or in the
// background by the session.
func (o *owner) abandon() { o.claim.Abandon() }

func (o *owner) held() bool {
	_, err := o.claim.Holding()
	return err == nil
}

func (o *owner) key() string            { return o.claim.Key() }
func (o *owner) token() int64           { return o.claim.Token() }
func (o *owner) ownerCmp() clientv3.Cmp { return o.claim.Cmp() }
func (o *owner) done() <-chan struct{}  { return o.claim.Done() }
func (o *owner) err() error             { return lost(o.claim.Err()) }

func (o *owner) do(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	resp, err := o.claim.Do(ctx, ops...)
	return resp, wrapErr(err)
}
