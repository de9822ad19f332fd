// Package ownership is the machinery under lock and election: a session whose lease is
// known to be alive until a deadline, and keys that are owned while they are the oldest
// (or among the oldest) under a prefix.
package ownership

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
)

// ErrSessionLost reports that the session's lease expired, was revoked, or could not be
// renewed for long enough that the server may have expired it.
var ErrSessionLost = errors.New("session lost")

// Margin is how long before the earliest possible server-side expiry a lease is
// declared lost: a sixth of the TTL, at least 200ms.
func Margin(ttl time.Duration) time.Duration {
	m := ttl / 6
	if m < 200*time.Millisecond {
		m = 200 * time.Millisecond
	}
	return m
}

// Session is a concurrency.Session watched by a tracker of its own. The tracker renews the
// lease with single keep-alive requests and remembers when each acknowledged request was
// sent: the server cannot expire the lease before send time + TTL, so the lease is known
// to be alive until that instant minus Margin. When that deadline passes without a newer
// acknowledgement, or the lease is gone, or the session ends, the Session is lost for good.
type Session struct {
	cli   *clientv3.Client
	s     *concurrency.Session
	owned bool
	lg    *zap.Logger

	confirmed chan struct{} // closed once the deadline is known
	lost      chan struct{}
	ctx       context.Context // ends at Release
	cancel    context.CancelFunc
	lostCtx   context.Context // ends at loss or Release
	lostStop  context.CancelFunc
	wg        sync.WaitGroup

	mu       sync.Mutex
	deadline time.Time
	ttl      time.Duration
	err      error
	keys     map[string]int64 // keys to delete if the session is lost but the lease may survive
	refs     int
	closed   bool
}

// Grant creates a session with a new lease of ttl. ctx bounds only the grant.
func Grant(ctx context.Context, cli *clientv3.Client, ttl time.Duration, lg *zap.Logger) (*Session, error) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	sent := time.Now()
	resp, err := cli.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	s, err := concurrency.NewSession(cli, concurrency.WithLease(resp.ID), concurrency.WithTTL(int(resp.TTL)))
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = cli.Revoke(rctx, resp.ID)
		cancel()
		return nil, fmt.Errorf("start session: %w", err)
	}
	got := time.Duration(resp.TTL) * time.Second
	ses := newSession(cli, s, true, lg)
	ses.ttl = got
	ses.deadline = sent.Add(got - Margin(got))
	close(ses.confirmed)
	ses.start()
	return ses, nil
}

var (
	registryMu sync.Mutex
	registry   = map[*concurrency.Session]*Session{}
)

// Attach returns the tracker of a session the caller owns; it is shared by every user of
// the same session and stops when the last one calls Release.
func Attach(s *concurrency.Session, lg *zap.Logger) *Session {
	registryMu.Lock()
	defer registryMu.Unlock()
	if ses, ok := registry[s]; ok {
		ses.mu.Lock()
		ses.refs++
		ses.mu.Unlock()
		return ses
	}
	ses := newSession(s.Client(), s, false, lg)
	ses.refs = 1
	registry[s] = ses
	ses.start()
	return ses
}

func newSession(cli *clientv3.Client, s *concurrency.Session, owned bool, lg *zap.Logger) *Session {
	if lg == nil {
		lg = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	lostCtx, lostStop := context.WithCancel(ctx)
	return &Session{
		cli: cli, s: s, owned: owned, lg: lg,
		confirmed: make(chan struct{}), lost: make(chan struct{}), ctx: ctx, cancel: cancel,
		lostCtx: lostCtx, lostStop: lostStop,
		keys: map[string]int64{}, refs: 1,
	}
}

func (s *Session) start() {
	s.wg.Add(1)
	go s.track()
}

// Client returns the session's client.
func (s *Session) Client() *clientv3.Client { return s.cli }

// Lease returns the session's lease.
func (s *Session) Lease() clientv3.LeaseID { return s.s.Lease() }

// Owned reports whether the session was granted by Grant (and may be replaced).
func (s *Session) Owned() bool { return s.owned }

// Lost is closed when the session is lost.
func (s *Session) Lost() <-chan struct{} { return s.lost }

// Err returns why the session was lost, or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Deadline returns the instant until which the lease is known to be alive.
func (s *Session) Deadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadline
}

// Alive reports whether the lease is known to be alive now.
func (s *Session) Alive() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	select {
	case <-s.confirmed:
	default:
		return fmt.Errorf("%w: lease not yet confirmed", ErrSessionLost)
	}
	if !time.Now().Before(s.deadline) {
		return fmt.Errorf("%w: keep-alive silent past the lease deadline", ErrSessionLost)
	}
	return nil
}

// WaitAlive waits until the lease's deadline is known and reports whether it is alive.
func (s *Session) WaitAlive(ctx context.Context) error {
	select {
	case <-s.confirmed:
	case <-s.lost:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Alive()
}

// Bind returns a context that also ends when the session is lost or released, so that
// no call made under it outlives the session. Call stop when done.
func (s *Session) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	bctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.lostCtx, cancel)
	return bctx, func() {
		stop()
		cancel()
	}
}

// OnLost calls fn (on a goroutine of its own) when the session is lost or released;
// the returned stop prevents that if it has not happened yet.
func (s *Session) OnLost(fn func()) (stop func() bool) {
	return context.AfterFunc(s.lostCtx, fn)
}

// Track registers a key bound to the lease, deleted (guarded by rev) if the session is
// lost while the lease may still live. Untrack removes it.
func (s *Session) Track(key string, rev int64) {
	s.mu.Lock()
	s.keys[key] = rev
	s.mu.Unlock()
}

// Untrack forgets a key registered with Track.
func (s *Session) Untrack(key string) {
	s.mu.Lock()
	delete(s.keys, key)
	s.mu.Unlock()
}

func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.lost)
		s.lostStop()
		s.lg.Warn("session lost", zap.Int64("lease", int64(s.s.Lease())), zap.Error(err))
	}
	s.mu.Unlock()
}

func (s *Session) interval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ttl == 0 {
		return 0
	}
	return s.ttl / 4
}

func (s *Session) track() {
	defer s.wg.Done()
	base := s.ctx

	renew := time.NewTimer(s.interval())
	defer renew.Stop()
	expire := time.NewTimer(time.Hour)
	defer expire.Stop()
	retry := backoff.New(50*time.Millisecond, 500*time.Millisecond)
	for {
		if d := s.Deadline(); !d.IsZero() {
			expire.Reset(time.Until(d))
		}
		select {
		case <-base.Done():
			return
		case <-s.s.Done():
			s.fail(fmt.Errorf("%w: session ended", ErrSessionLost))
			s.afterLoss(base)
			return
		case <-expire.C:
			if !time.Now().Before(s.Deadline()) {
				s.fail(fmt.Errorf("%w: keep-alive silent past the lease deadline", ErrSessionLost))
				s.afterLoss(base)
				return
			}
		case <-renew.C:
			err := s.renew(base)
			switch {
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				s.fail(fmt.Errorf("%w: lease not found", ErrSessionLost))
				s.afterLoss(base)
				return
			case err != nil:
				if base.Err() != nil {
					return
				}
				renew.Reset(retry.Next())
			default:
				retry.Reset()
				renew.Reset(s.interval())
			}
		}
	}
}

func (s *Session) renew(base context.Context) error {
	sent := time.Now()
	limit := s.Deadline()
	if limit.IsZero() {
		limit = sent.Add(5 * time.Second)
	}
	ctx, cancel := context.WithDeadline(base, limit)
	defer cancel()
	resp, err := s.cli.KeepAliveOnce(ctx, s.s.Lease())
	if err != nil {
		return err
	}
	ttl := time.Duration(resp.TTL) * time.Second
	d := sent.Add(ttl - Margin(ttl))
	s.mu.Lock()
	if s.err == nil {
		s.ttl = ttl
		if d.After(s.deadline) {
			s.deadline = d
		}
		select {
		case <-s.confirmed:
		default:
			close(s.confirmed)
		}
	}
	s.mu.Unlock()
	return nil
}

// afterLoss makes the server agree with the loss: an owned session stops renewing so the
// lease expires; a borrowed session is left alone, but the keys tracked on it are deleted
// so they do not block others if the lease survives.
func (s *Session) afterLoss(base context.Context) {
	if s.owned {
		s.s.Orphan()
		return
	}
	s.mu.Lock()
	ttl := s.ttl
	s.mu.Unlock()
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(base, 2*ttl)
	defer cancel()
	b := backoff.New(100*time.Millisecond, time.Second)
	for {
		s.mu.Lock()
		keys := make(map[string]int64, len(s.keys))
		for k, v := range s.keys {
			keys[k] = v
		}
		s.mu.Unlock()
		ok := true
		for k, rev := range keys {
			if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", rev)).
				Then(clientv3.OpDelete(k)).Commit(); err != nil {
				ok = false
				continue
			}
			s.Untrack(k)
		}
		if ok || !b.Wait(ctx) {
			return
		}
	}
}

// Release drops one reference; the last one stops the tracker. An owned session is
// closed (its lease revoked, deleting every key on it).
func (s *Session) Release() error {
	if !s.owned {
		registryMu.Lock()
		s.mu.Lock()
		s.refs--
		last := s.refs == 0
		s.mu.Unlock()
		if last {
			if registry[s.s] == s {
				delete(registry, s.s)
			}
		}
		registryMu.Unlock()
		if !last {
			return nil
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if !s.owned {
		return nil
	}
	select {
	case <-s.lost:
		// The lease is expiring on its own; a revoke could only wait on a dead network.
		s.s.Orphan()
		return nil
	default:
	}
	s.s.Orphan()
	ttl := s.ttlOr(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), ttl)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, s.s.Lease()); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoke lease: %w", err)
	}
	return nil
}

func (s *Session) ttlOr(d time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ttl > 0 {
		return s.ttl
	}
	return d
}
