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

// Session is a lease watched by a tracker of its own: granted here (owned), or that of a
// concurrency.Session the caller owns (borrowed). The tracker renews the lease with
// keep-alive requests of their own and remembers when each acknowledged one was sent: the server cannot expire the lease before send time + TTL, so the lease is known
// to be alive until that instant minus Margin. When that deadline passes without a newer
// acknowledgement, or the lease is gone, or the session ends, the Session is lost for good.
type Session struct {
	cli   *clientv3.Client
	lease clientv3.LeaseID
	s     *concurrency.Session // the borrowed session; nil when owned
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
	keys     map[string]int64 // keys on the lease, deleted if the session is lost but the lease may survive
	drops    map[string]int64 // keys to delete in the background (rev 0: guard by the lease)
	refs     int
	closed   bool
	revoked  bool          // our own lease, revoked (or found gone) after its loss or at Release
	revokedC chan struct{} // closed when revoked is set
	slow     time.Duration // the slowest recent renewal, decaying by a quarter at each
	draining bool          // a borrowed session's drops outlive its Release: see drainAfterRelease

	kick chan struct{} // wakes the janitor
}

// MaxTTL is etcd's maximum lease TTL (9e9 seconds); a longer TTL is an invalid argument.
const MaxTTL = 9_000_000_000 * time.Second

// Grant creates a session with a new lease of ttl (rounded up to whole seconds, at most
// MaxTTL). ctx bounds only the grant.
func Grant(ctx context.Context, cli *clientv3.Client, ttl time.Duration, lg *zap.Logger) (*Session, error) {
	if ttl <= 0 || ttl > MaxTTL {
		return nil, fmt.Errorf("grant lease: TTL %v out of range (0, %v]", ttl, MaxTTL)
	}
	secs := int64(ttl / time.Second)
	if ttl%time.Second != 0 {
		secs++
	}
	sent := time.Now()
	resp, err := cli.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	got := time.Duration(resp.TTL) * time.Second
	ses := newSession(cli, resp.ID, nil, lg)
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
	ses := newSession(s.Client(), s.Lease(), s, lg)
	ses.refs = 1
	registry[s] = ses
	ses.start()
	return ses
}

func newSession(cli *clientv3.Client, lease clientv3.LeaseID, borrowed *concurrency.Session, lg *zap.Logger) *Session {
	if lg == nil {
		lg = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	lostCtx, lostStop := context.WithCancel(ctx)
	return &Session{
		cli: cli, lease: lease, s: borrowed, owned: borrowed == nil, lg: lg,
		confirmed: make(chan struct{}), lost: make(chan struct{}), ctx: ctx, cancel: cancel,
		lostCtx: lostCtx, lostStop: lostStop,
		keys: map[string]int64{}, drops: map[string]int64{}, refs: 1,
		kick: make(chan struct{}, 1), revokedC: make(chan struct{}),
	}
}

func (s *Session) start() {
	s.wg.Add(2)
	go s.track()
	go s.janitor()
}

// Client returns the session's client.
func (s *Session) Client() *clientv3.Client { return s.cli }

// Lease returns the session's lease.
func (s *Session) Lease() clientv3.LeaseID { return s.lease }

// Lost is closed when the session is lost or released.
func (s *Session) Lost() <-chan struct{} { return s.lost }

// Err returns why the session was lost (ErrClosed after Release), or nil.
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
	if s.closed {
		return ErrClosed
	}
	select {
	case <-s.confirmed:
	default:
		return fmt.Errorf("%w: lease not yet confirmed", ErrSessionLost)
	}
	if !time.Now().Before(s.deadline) {
		// Loss is for good: record it, so that no late reply can revive the session.
		s.mu.Unlock()
		s.fail(fmt.Errorf("%w: keep-alive silent past the lease deadline", ErrSessionLost))
		s.mu.Lock()
		return s.err
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
	lostBorrowed := s.err != nil && !s.owned
	if lostBorrowed {
		s.drops[key] = rev
	}
	s.mu.Unlock()
	if lostBorrowed {
		s.wake()
	}
}

// Untrack forgets a key registered with Track.
func (s *Session) Untrack(key string) {
	s.mu.Lock()
	delete(s.keys, key)
	delete(s.drops, key)
	s.mu.Unlock()
}

// Drop deletes key — guarded by its create revision rev, or by the lease when rev is 0
// (the key's name is ours alone) — so that it never blocks others: at once, waiting at
// most CleanupTimeout, and if that fails, in the background, with backoff, until the
// delete lands, the lease is gone, or the session is released. A lost session of our
// own needs nothing: its lease is left to expire, and the key with it.
func (s *Session) Drop(key string, rev int64) {
	s.mu.Lock()
	gone := s.err != nil && s.owned
	s.mu.Unlock()
	if gone {
		s.Untrack(key)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout(s.ttlOr(0)))
	err := s.remove(ctx, key, rev)
	cancel()
	if err == nil {
		return
	}
	s.mu.Lock()
	s.keys[key] = rev
	s.drops[key] = rev
	released := s.closed && !s.owned
	s.mu.Unlock()
	if released {
		s.drainAfterRelease()
		return
	}
	s.wake()
}

// CleanupTimeout bounds each wait for etcd in a cleanup: a third of the TTL, at least
// one second (and 2s when the TTL is not known yet).
func CleanupTimeout(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 2 * time.Second
	}
	return max(ttl/3, time.Second)
}

func (s *Session) remove(ctx context.Context, key string, rev int64) error {
	guard := clientv3.Compare(clientv3.CreateRevision(key), "=", rev)
	if rev == 0 {
		guard = clientv3.Compare(clientv3.LeaseValue(key), "=", s.lease)
	}
	if _, err := s.cli.Txn(ctx).If(guard).Then(clientv3.OpDelete(key)).Commit(); err != nil {
		return err
	}
	s.Untrack(key)
	return nil
}

func (s *Session) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// janitor deletes the keys handed to Drop (and, once a borrowed session is lost, every
// key on it), until the session is released. Once a session of our own is lost it
// revokes the lease instead, as soon as etcd answers.
func (s *Session) janitor() {
	defer s.wg.Done()
	// Short: each try waits for etcd (CleanupTimeout) anyway, and a revoke or delete that
	// lands a moment after etcd answers again unblocks whoever waits behind our keys.
	b := backoff.New(50*time.Millisecond, 250*time.Millisecond)
	var retry <-chan time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-retry:
		}
		retry = nil
		if !s.sweep(s.ctx) {
			retry = time.After(b.Next())
			continue
		}
		b.Reset()
	}
}

// sweep tries every pending drop once and reports whether none is left (or none need be,
// or can be: a closed client can delete and revoke nothing, and a lease nobody renews
// through it any more takes its keys with it within its TTL).
func (s *Session) sweep(ctx context.Context) bool {
	if s.cli.Ctx().Err() != nil {
		return true
	}
	s.mu.Lock()
	if s.err != nil && s.owned {
		// We stopped renewing. Revoke as soon as etcd answers rather than let the lease
		// expire, so that nobody waits out a TTL behind our keys — for as long as it
		// takes: a leader change at etcd extends every lease by a TTL.
		done := s.revoked
		s.mu.Unlock()
		if done {
			return true
		}
		rctx, cancel := context.WithTimeout(ctx, CleanupTimeout(s.ttlOr(0)))
		defer cancel()
		return s.revoke(rctx) == nil
	}
	drops := make(map[string]int64, len(s.drops))
	for k, v := range s.drops {
		drops[k] = v
	}
	s.mu.Unlock()
	ok := true
	for k, rev := range drops {
		rctx, cancel := context.WithTimeout(ctx, CleanupTimeout(s.ttlOr(0)))
		if err := s.remove(rctx, k, rev); err != nil {
			ok = false
		}
		cancel()
	}
	s.mu.Lock()
	left := len(s.drops)
	s.mu.Unlock()
	return ok && left == 0
}

func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.lost)
		s.lostStop()
		if err != ErrClosed {
			s.lg.Warn("session lost", zap.Int64("lease", int64(s.lease)), zap.Error(err))
		}
		if !s.owned {
			// The caller's lease may live on: our keys must not.
			for k, v := range s.keys {
				s.drops[k] = v
			}
		}
	}
	s.mu.Unlock()
	s.wake()
}

// untilRenewal returns how long until the next renewal is due: an interval after the
// send time of the last acknowledged renewal (or of the grant), not after its reply, so
// that a slow reply never pushes the next renewal toward the deadline. A renewal that
// is already due (or a lease whose deadline is not known yet) is renewed at once.
func (s *Session) untilRenewal() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ttl == 0 || s.deadline.IsZero() {
		return 0
	}
	sent := s.deadline.Add(-(s.ttl - Margin(s.ttl)))
	return max(time.Until(sent.Add(RenewInterval(s.ttl, s.slow))), 0)
}

// RenewInterval is the time from one renewal to the next for a lease of ttl, given
// slow, the slowest recent renewal: as late as leaves, before the lease's deadline, a
// third of the TTL (at least 500ms) and three times slow for the renewal to land, at
// least a third of the TTL, at most one second. Renewing sooner would only make a
// lease cut off from us outlive us longer at etcd, and its keys block successors
// longer: etcd's own keep-alive, which checks every 500ms for a renewal due a third of
// the TTL after the last reply, renews a 2s lease every second too. When renewals are
// slow (a loaded machine or server), they come sooner, down to a third of the TTL.
func RenewInterval(ttl, slow time.Duration) time.Duration {
	slack := max(ttl/3, 500*time.Millisecond, 3*slow)
	return min(max(ttl/3, ttl-Margin(ttl)-slack), time.Second)
}

func (s *Session) track() {
	defer s.wg.Done()
	base := s.ctx

	renew := time.NewTimer(s.untilRenewal())
	defer renew.Stop()
	expire := time.NewTimer(time.Hour)
	defer expire.Stop()
	retry := backoff.New(50*time.Millisecond, 500*time.Millisecond)
	ended := s.cli.Ctx().Done() // the client closed; for a borrowed session, its end
	if s.s != nil {
		ended = s.s.Done()
	}
	for {
		if d := s.Deadline(); !d.IsZero() {
			expire.Reset(time.Until(d))
		}
		select {
		case <-base.Done():
			return
		case <-ended:
			s.fail(fmt.Errorf("%w: session ended", ErrSessionLost))
			return
		case <-expire.C:
			if !time.Now().Before(s.Deadline()) {
				s.fail(fmt.Errorf("%w: keep-alive silent past the lease deadline", ErrSessionLost))
				return
			}
		case <-renew.C:
			err := s.renew(base)
			switch {
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				s.fail(fmt.Errorf("%w: lease not found", ErrSessionLost))
				return
			case err != nil:
				if base.Err() != nil {
					return
				}
				renew.Reset(retry.Next())
			default:
				retry.Reset()
				renew.Reset(s.untilRenewal())
			}
		}
	}
}

func (s *Session) renew(base context.Context) error {
	start := time.Now()
	limit := s.Deadline()
	if limit.IsZero() {
		limit = start.Add(5 * time.Second)
	}
	ctx, cancel := context.WithDeadline(base, limit)
	defer cancel()
	// A request not answered within half the time left is hedged by a second one, which
	// the client may send to another endpoint: neither an endpoint that stopped answering
	// nor a server slow to answer costs the lease while a renewal can still land. (Not
	// "at least 500ms": a 1s lease's renewal has 467ms to land, a 2s one's 667ms, and a
	// hedge sent that late lands after the deadline or barely before it.) The first
	// answer counts, from its own send time.
	type reply struct {
		sent time.Time
		resp *clientv3.LeaseKeepAliveResponse
		err  error
	}
	replies := make(chan reply, 2)
	send := func() {
		sent := time.Now()
		resp, err := s.cli.KeepAliveOnce(ctx, s.lease)
		replies <- reply{sent, resp, err}
	}
	go send()
	inFlight := 1
	hedge := time.NewTimer(limit.Sub(start) / 2)
	defer hedge.Stop()
	var r reply
	for {
		select {
		case <-hedge.C:
			inFlight++
			go send()
			continue
		case r = <-replies:
			inFlight--
		}
		if r.err == nil || inFlight == 0 || errors.Is(r.err, rpctypes.ErrLeaseNotFound) {
			break
		}
	}
	cancel()
	for ; inFlight > 0; inFlight-- {
		<-replies // the other request ends with ctx
	}
	if r.err != nil {
		return r.err
	}
	resp, sent := r.resp, r.sent
	ttl := time.Duration(resp.TTL) * time.Second
	d := sent.Add(ttl - Margin(ttl))
	s.mu.Lock()
	expired := false
	if s.err == nil {
		select {
		case <-s.confirmed:
			// A reply processed after the deadline comes too late: the session may
			// already have been declared lost, and loss is for good.
			expired = !time.Now().Before(s.deadline)
		default:
			close(s.confirmed)
		}
		if !expired {
			// How long the renewal took to land, from its first request: a hedge that
			// answered first says nothing of that.
			s.slow = max(time.Since(start), s.slow*3/4)
			s.ttl = ttl
			if d.After(s.deadline) {
				s.deadline = d
			}
		}
	}
	s.mu.Unlock()
	if expired {
		s.fail(fmt.Errorf("%w: keep-alive silent past the lease deadline", ErrSessionLost))
	}
	return nil
}

// Release drops one reference; the last one stops the tracker and the janitor. An owned
// session is closed: its lease revoked, deleting every key on it. A borrowed one tries
// the keys still owed a delete once more, and leaves what fails to a goroutine that
// retries until the deletes land or the caller's session ends. Either waits at most
// CleanupTimeout for etcd.
func (s *Session) Release() error { return s.ReleaseContext(context.Background()) }

// ReleaseContext is Release, waiting for etcd no longer than until ctx ends either.
func (s *Session) ReleaseContext(ctx context.Context) error {
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
	wasLost := s.err != nil
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.fail(ErrClosed) // Lost closes; a borrowed session's keys are owed a delete
	ctx, cancel := context.WithTimeout(ctx, CleanupTimeout(s.ttlOr(0)))
	defer cancel()
	if !s.owned {
		// The lease is the caller's and lives on: the keys we still owe a delete are
		// deleted now or, if etcd does not answer, in the background after Release.
		if !s.sweep(ctx) {
			s.drainAfterRelease()
		}
		return nil
	}
	s.mu.Lock()
	skip := s.revoked || (wasLost && time.Now().After(s.deadline.Add(s.ttl)))
	s.mu.Unlock()
	if skip {
		return nil
	}
	if err := s.revoke(ctx); err != nil && !wasLost {
		return fmt.Errorf("revoke lease: %w", err)
	}
	return nil
}

// drainAfterRelease deletes the keys a released borrowed session still owes a delete, in
// the background, with backoff, until every delete lands or the caller's session ends
// (its lease gone, and our keys with it). It outlives the Session: only the caller's
// session bounds it.
func (s *Session) drainAfterRelease() {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return
	}
	s.draining = true
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			s.draining = false
			s.mu.Unlock()
		}()
		b := backoff.New(100*time.Millisecond, time.Second)
		for {
			t := time.NewTimer(b.Next())
			select {
			case <-s.s.Done():
				t.Stop()
				return
			case <-s.cli.Ctx().Done():
				t.Stop()
				return
			case <-t.C:
			}
			if s.sweep(context.Background()) {
				return
			}
		}
	}()
}

func (s *Session) revoke(ctx context.Context) error {
	_, err := s.cli.Revoke(ctx, s.lease)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return err
	}
	s.mu.Lock()
	if !s.revoked {
		s.revoked = true
		close(s.revokedC)
	}
	s.mu.Unlock()
	return nil
}

// Retire releases a session its user has replaced. A lost lease of our own may live on
// at etcd (a leader change there extends every lease), its keys blocking whoever waits
// behind them: the janitor goes on revoking it until etcd answers, and Retire releases
// the session once it has, or once ctx ends.
func (s *Session) Retire(ctx context.Context) {
	if s.owned && s.Err() != nil {
		select {
		case <-s.revokedC:
		case <-ctx.Done():
		}
	}
	_ = s.ReleaseContext(ctx)
}

func (s *Session) ttlOr(d time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ttl > 0 {
		return s.ttl
	}
	return d
}
