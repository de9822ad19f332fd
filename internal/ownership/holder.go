package ownership

import (
	"context"
	"errors"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// ErrClosed reports use after Close.
var ErrClosed = errors.New("closed")

// Holder hands out the live session of one owner: the borrowed one it was given, or a
// lease of its own that it replaces after loss.
type Holder struct {
	cli      *clientv3.Client
	ttl      time.Duration
	borrowed *concurrency.Session
	lg       *zap.Logger

	grant  chan struct{}  // holds a token during a grant: one at a time, waited for under ctx
	old    sync.WaitGroup // releases of replaced sessions
	ctx    context.Context
	cancel context.CancelFunc // ends a grant in flight at Close
	mu     sync.Mutex
	cur    *Session
	closed bool
}

// NewHolder returns a Holder; with borrowed non-nil every Get returns that session.
func NewHolder(cli *clientv3.Client, ttl time.Duration, borrowed *concurrency.Session, lg *zap.Logger) *Holder {
	h := &Holder{cli: cli, ttl: ttl, borrowed: borrowed, lg: lg, grant: make(chan struct{}, 1)}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if borrowed != nil {
		h.cur = Attach(borrowed, lg)
	}
	return h
}

// Get returns the live session, granting a new lease if the owned one was lost. A lost
// borrowed session is returned as it is: only its owner can replace it.
func (h *Holder) Get(ctx context.Context) (*Session, error) {
	// One grant at a time; a live session is returned at once. A caller behind a grant
	// (which may take up to the TTL while etcd does not answer) waits only as long as
	// its ctx lets it.
	select {
	case h.grant <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-h.ctx.Done():
		return nil, ErrClosed
	}
	defer func() { <-h.grant }()
	h.mu.Lock()
	cur, closed := h.cur, h.closed
	h.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case cur != nil && (h.borrowed != nil || cur.Err() == nil):
		return cur, nil
	}
	if cur != nil {
		// Revoke the lost lease as soon as etcd answers, so that nobody waits out its
		// TTL, while the next one is granted.
		h.mu.Lock()
		h.cur = nil
		h.mu.Unlock()
		h.old.Add(1)
		go func() {
			defer h.old.Done()
			cur.Retire(h.ctx)
		}()
	}
	// A grant lost on a connection that swallowed it would never be answered: bound it,
	// so that the caller can try again once etcd is reachable.
	// Close ends it too, so that Close never waits for a grant.
	// Hedged (see hedged): one member that stops answering does not cost the whole TTL.
	gctx, cancel := context.WithTimeout(ctx, h.ttl)
	stop := context.AfterFunc(h.ctx, cancel)
	ses, err := hedged(gctx, callTimeout(h.ttl), func(ctx context.Context) (*Session, error) {
		return Grant(ctx, h.cli, h.ttl, h.lg)
	}, func(s *Session) { _ = s.Release() })
	stop()
	cancel()
	h.mu.Lock()
	closed = h.closed
	if err == nil && !closed {
		h.cur = ses
	}
	h.mu.Unlock()
	if closed {
		if err == nil {
			_ = ses.Release()
		}
		return nil, ErrClosed
	}
	if err != nil {
		return nil, err
	}
	return ses, nil
}

// CleanupTimeout bounds each wait for etcd in a cleanup (see CleanupTimeout): from the
// TTL of the current session (a borrowed one's own), else from the TTL asked for.
func (h *Holder) CleanupTimeout() time.Duration {
	h.mu.Lock()
	cur := h.cur
	h.mu.Unlock()
	ttl := h.ttl
	if h.borrowed != nil {
		ttl = 0
	}
	if cur != nil {
		ttl = cur.ttlOr(ttl)
	}
	return CleanupTimeout(ttl)
}

// Close releases the session: an owned lease is revoked, a borrowed session is left to
// its owner. Idempotent.
func (h *Holder) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.cancel() // a grant in flight ends now
	h.grant <- struct{}{}
	defer func() { <-h.grant }()
	h.mu.Lock()
	cur := h.cur
	h.mu.Unlock()
	defer h.old.Wait()
	if cur == nil {
		return nil
	}
	return cur.Release()
}
