package lock

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// Mutex is a distributed mutual-exclusion lock on a key. Each holding has a fencing
// token (Token) and ends with Unlock or with loss (Done). A Mutex is one participant:
// use one per goroutine that competes for the lock. Its methods are safe to call
// concurrently (Lock on a value that holds or is acquiring returns ErrBusy).
type Mutex struct {
	claim    *ownership.Claim
	holder   *ownership.Holder
	ownsHold bool   // the holder (and its lease) belongs to this Mutex
	onClose  func() // tells a Manager to forget this Mutex
}

// New returns a Mutex on key (its participants' keys live under key + "/"). It does not
// block: the lease is granted by the first Lock, unless WithSession supplies one (whose
// lease is then tracked at once). Its participants' keys are compatible with etcd's
// concurrency.Mutex and etcdctl lock on the same key: they exclude each other.
func New(cli *clientv3.Client, key string, opts ...Option) (*Mutex, error) {
	if err := checkArgs(cli, key); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return newMutex(ownership.NewHolder(cli, o.ttl, o.session, o.logger), key, true), nil
}

func newMutex(h *ownership.Holder, key string, ownsHold bool) *Mutex {
	dir := dirOf(key)
	return &Mutex{claim: ownership.NewClaim(h, dir, "", ownership.Predecessor(dir), vocab(key)), holder: h, ownsHold: ownsHold}
}

func checkArgs(cli *clientv3.Client, key string) error {
	if cli == nil {
		return fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if strings.TrimRight(key, "/") == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	return nil
}

func dirOf(key string) string {
	return strings.TrimRight(key, "/") + "/"
}

// Lock blocks until this Mutex holds the lock, ctx ends, or the session is lost. It
// waits only for the participant just ahead of it. It returns success only after
// reading its own key back with its create revision while its lease is known to be
// alive; on failure or cancellation its waiting key is removed.
func (m *Mutex) Lock(ctx context.Context) error { return m.claim.Acquire(ctx, true) }

// TryLock takes the lock if it is free and otherwise returns a *HeldError (matching
// ErrLocked) at once, leaving no key behind.
func (m *Mutex) TryLock(ctx context.Context) error { return m.claim.Acquire(ctx, false) }

// Unlock releases the lock by deleting our key. Its name is used by no other holding,
// ours or anyone's, so a retried or late Unlock can never delete a later holder's key —
// what a delete guarded by our create revision would ensure, at the cost of a plain
// delete. It returns ErrNotHeld when we do not own the lock (never locked, already
// unlocked, or lost). After a network error it is unknown whether the delete was
// applied: Unlock may be retried.
func (m *Mutex) Unlock(ctx context.Context) error { return m.claim.Release(ctx) }

// Key returns our key under the lock's key: the one we wait with during Lock, then the
// one of the current or last holding ("" before the first Lock).
func (m *Mutex) Key() string { return m.claim.Key() }

// Token returns the fencing token of the current holding, 0 when not held: our key's
// create revision, strictly increasing from one holder to the next. Pass it to the
// resources the lock protects so they can reject a stale holder.
func (m *Mutex) Token() int64 { return m.claim.Token() }

// OwnerCmp returns a comparison that holds in a transaction only while we own the lock
// (and never when we do not).
func (m *Mutex) OwnerCmp() clientv3.Cmp { return m.claim.Cmp() }

// Do applies ops in one transaction only if we still own the lock at the moment etcd
// applies it; otherwise it returns ErrNotHeld and the holding ends.
func (m *Mutex) Do(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	return m.claim.Do(ctx, ops...)
}

// Done returns a channel closed when the current holding ends: Unlock, our key deleted
// or replaced, the session lost, or keep-alives silent long enough that etcd may have
// expired the lease (closed a margin before that could happen). The first call during
// a holding starts a watch on our key. When nothing is held it returns a closed channel.
func (m *Mutex) Done() <-chan struct{} { return m.claim.Done() }

// Err returns nil while the lock is held, after Unlock, or before any Lock, and an error
// wrapping ErrLost (and the cause, such as ErrSessionLost) after ownership was lost.
func (m *Mutex) Err() error { return m.claim.Err() }

// Close releases the lock if held and, unless WithSession was given, revokes the lease.
// It is idempotent.
func (m *Mutex) Close() error {
	m.claim.Close() // ends a Lock in flight too, even on a lease that lives on
	if m.onClose != nil {
		m.onClose()
	}
	if m.ownsHold {
		return m.holder.Close()
	}
	return nil
}
