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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
)

// ErrSessionLost reports that the session's lease expired, was revoked, or could not be
// renewed for long enough that the server may have expired it.
var ErrSessionLost = errors.New("session lost")

// MaxTTL is etcd's maximum lease TTL (9e9 seconds); a longer TTL is an invalid argument.
const MaxTTL = 9_000_000_000 * time.Second

// Margin is how long before the earliest possible server-side expiry a lease is
// declared lost: a sixth of the TTL, at least 200ms.
func Margin(ttl time.Duration) time.Duration {
	return max(ttl/6, 200*time.Millisecond)
}

// Session is a lease watched by a tracker of its own: granted here, or that of a
// concurrency.Session the caller owns (borrowed). The tracker renews the lease with
// keep-alive requests on streams of its own (see renewStreams), on the connections its
// client's sessions share for renewals (see renewConns), and remembers when each
// acknowledged one was sent:
// the server cannot expire the lease before send time + TTL, so the lease is known to
// be alive until that instant minus Margin. When that deadline passes without a newer
// acknowledgement, or the lease is gone, or the session ends, the Session is lost for
// good.
type Session struct {
	cli      *clientv3.Client
	lease    clientv3.LeaseID
	borrowed *concurrency.Session // nil when the lease is our own
	lg       *zap.Logger
	wall     func() time.Time // the wall clock, time.Now but in tests; under mu

	confirmed chan struct{}   // closed once the deadline is known
	tracked   chan struct{}   // closed when the tracker returns
	ctx       context.Context // ends at Release
	cancel    context.CancelFunc
	lostCtx   context.Context // ends at loss or Release
	lostStop  context.CancelFunc

	refs int // users of a borrowed session (Attach), under sharedMu

	renewals *renewConns   // the connections its renewals go through, shared by its client's sessions
	streams  *renewStreams // its keep-alive streams on them

	watchMu sync.Mutex
	watches *stream // the stream its holdings watch their keys on (joinStream), or nil

	mu       sync.Mutex
	deadline time.Time
	ttl      time.Duration
	slow     time.Duration // the slowest recent renewal, decaying by a quarter at each
	err      error
	closed   bool
	keys     map[string]bool // our keys on the lease; true: owed a delete
	sweeping chan struct{}   // closed when the janitor at work (if any) stops
	revoked  chan struct{}   // closed once our own lease is revoked, found gone, or refused for good
}

// Grant creates a session with a new lease of ttl (rounded up to whole seconds, at most
// MaxTTL). ctx bounds only the grant.
func Grant(ctx context.Context, cli *clientv3.Client, ttl time.Duration, lg *zap.Logger) (*Session, error) {
	if ttl <= 0 || ttl > MaxTTL {
		return nil, fmt.Errorf("grant lease: TTL %v out of range (0, %v]", ttl, MaxTTL)
	}
	sent := time.Now()
	resp, err := cli.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	ses := newSession(cli, resp.ID, nil, lg)
	ses.ttl = time.Duration(resp.TTL) * time.Second
	ses.deadline = sent.Add(ses.ttl - Margin(ses.ttl))
	close(ses.confirmed)
	go ses.track()
	return ses, nil
}

var (
	sharedMu sync.Mutex
	shared   = map[*concurrency.Session]*Session{}
)

// Attach returns the tracker of a session the caller owns, shared by all its users (one
// renewal loop per session, however many locks hang on it) until the last one releases
// it.
func Attach(s *concurrency.Session, lg *zap.Logger) *Session {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	ses := shared[s]
	if ses == nil {
		ses = newSession(s.Client(), s.Lease(), s, lg)
		shared[s] = ses
		go ses.track()
	}
	ses.refs++
	return ses
}

func newSession(cli *clientv3.Client, lease clientv3.LeaseID, borrowed *concurrency.Session, lg *zap.Logger) *Session {
	if lg == nil {
		lg = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	lostCtx, lostStop := context.WithCancel(context.Background())
	conns := renewConnsOf(cli)
	return &Session{
		cli: cli, lease: lease, borrowed: borrowed, lg: lg, wall: time.Now,
		confirmed: make(chan struct{}), tracked: make(chan struct{}),
		ctx: ctx, cancel: cancel, lostCtx: lostCtx, lostStop: lostStop,
		keys: map[string]bool{}, sweeping: closedCh, revoked: make(chan struct{}),
		renewals: conns, streams: newRenewStreams(conns),
	}
}

// Client returns the session's client.
func (s *Session) Client() *clientv3.Client { return s.cli }

// Lease returns the session's lease.
func (s *Session) Lease() clientv3.LeaseID { return s.lease }

// Lost is closed when the session is lost or released.
func (s *Session) Lost() <-chan struct{} { return s.lostCtx.Done() }

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

// Alive reports whether the lease is known to be alive now: its deadline has passed by
// neither clock (see passed).
func (s *Session) Alive() error {
	s.mu.Lock()
	err, closed, passed := s.err, s.closed, s.passed()
	s.mu.Unlock()
	switch {
	case err != nil:
		return err
	case closed:
		return ErrClosed
	case !isClosed(s.confirmed):
		return fmt.Errorf("%w: lease not yet confirmed", ErrSessionLost)
	case passed:
		// Loss is for good: record it, so that no late reply can revive the session.
		return s.expire()
	}
	return nil
}

// WaitAlive waits until the lease's deadline is known and reports whether it is alive.
func (s *Session) WaitAlive(ctx context.Context) error {
	select {
	case <-s.confirmed:
	case <-s.lostCtx.Done():
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

func (s *Session) fail(err error) {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = err
		s.lostStop()
		if s.borrowed != nil {
			// The caller's lease may live on: our keys must not.
			for k := range s.keys {
				s.keys[k] = true
			}
		}
	}
	s.mu.Unlock()
	if first {
		if err != ErrClosed {
			s.lg.Warn("session lost", zap.Int64("lease", int64(s.lease)), zap.Error(err))
		}
		s.wake()
	}
}

// passed reports whether the deadline has passed by either clock; call it with s.mu
// held. Go's timers and time comparisons use the monotonic clock, which on Linux stops
// while the machine is suspended, and etcd's clock does not: after a suspend only the
// wall clock knows that the lease may be gone. A wall clock stepped forward ends a
// lease early, the safe way; one stepped back changes nothing, as the monotonic
// deadline still holds.
func (s *Session) passed() bool {
	return !time.Now().Before(s.deadline) || !s.wall().Round(0).Before(s.deadline) // Round(0): by the wall clock
}

// overdue reports whether the deadline has passed.
func (s *Session) overdue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.passed()
}

// expire declares the session lost for silence past its deadline.
func (s *Session) expire() error {
	s.fail(fmt.Errorf("%w: keep-alive silent past the lease deadline", ErrSessionLost))
	return s.Err()
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
	defer close(s.tracked)
	defer s.renewals.release()
	defer s.streams.close()
	renew := time.NewTimer(s.untilRenewal())
	defer renew.Stop()
	expire := time.NewTimer(time.Hour)
	defer expire.Stop()
	retry := backoff.New(50*time.Millisecond, 500*time.Millisecond)
	ended := s.cli.Ctx().Done() // the client closed; for a borrowed session, its end
	if s.borrowed != nil {
		ended = s.borrowed.Done()
	}
	for {
		if d := s.Deadline(); !d.IsZero() {
			expire.Reset(time.Until(d))
		}
		select {
		case <-s.ctx.Done():
			return
		case <-ended:
			s.fail(fmt.Errorf("%w: session ended", ErrSessionLost))
			return
		case <-expire.C:
			if s.overdue() {
				s.expire()
				return
			}
		case <-renew.C:
			// The timers run on the monotonic clock: after a suspend, this may be the
			// first we hear of a deadline past by the wall clock.
			if isClosed(s.confirmed) && s.overdue() {
				s.expire()
				return
			}
			err := s.renew()
			switch {
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				s.fail(fmt.Errorf("%w: lease not found", ErrSessionLost))
				return
			case err != nil:
				if s.ctx.Err() != nil {
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

func (s *Session) renew() error {
	start := time.Now()
	limit := s.Deadline()
	if limit.IsZero() {
		limit = start.Add(5 * time.Second)
	}
	ctx, cancel := context.WithDeadline(s.ctx, limit)
	defer cancel()
	// A request goes to the member that answered the last renewal, on a connection of
	// the client's sessions to it (see renewConns). One not answered within half the
	// time left is hedged by another to the next member, and so on at half the time
	// then left (six requests at most): neither a member that stopped answering nor a
	// server slow to answer costs the lease while a renewal can still land. (Not "at
	// least 500ms": a 1s lease's renewal has 467ms to land, a 2s one's 667ms, and a
	// hedge sent that late lands after the deadline or barely before it.) One refused
	// goes on to the next member at once while there is one not tried yet (below). The
	// first answer counts, from its own send time.
	type reply struct {
		sent time.Time
		ep   string
		resp *clientv3.LeaseKeepAliveResponse
		err  error
	}
	const most = 6 // requests sent per renewal
	replies := make(chan reply, most)
	order := s.renewals.order()
	send := func(i int) {
		sent, ep := time.Now(), ""
		if len(order) > 0 {
			ep = order[i%len(order)]
		}
		if len(order) == 1 {
			// One endpoint: no member to choose, and no turn to take from anyone. The
			// renewal goes on the client's connection and shares the fate of the
			// application's requests, as etcd's own keep-alive does: a connection that
			// stops carrying them costs the lease, and another owner takes over.
			ep = ""
		}
		// Back at a member this renewal has a request waiting at: on a new stream.
		resp, err := s.streams.keepAliveOnce(ctx, ep, s.lease, i >= max(len(order), 1))
		replies <- reply{sent, ep, resp, err}
	}
	go send(0)
	hedge := time.NewTimer(limit.Sub(start) / 2)
	defer hedge.Stop()
	var r reply
	inFlight, sent := 1, 1
	more := func() {
		inFlight++
		sent++
		go send(sent - 1)
		if left := time.Until(limit); sent < most && left > 100*time.Millisecond {
			hedge.Reset(left / 2)
		}
	}
	for inFlight > 0 {
		select {
		case <-hedge.C:
			more()
			continue
		case r = <-replies:
			inFlight--
		}
		if r.err == nil || errors.Is(r.err, rpctypes.ErrLeaseNotFound) {
			break
		}
		// Refused (a member that lost its leader, a connection refused): the next
		// member now, not at the hedge's time, if there is one not tried yet. Not the
		// same members again: while the cluster has no leader, each refuses at once,
		// and the tracker's retry, with backoff, asks again.
		if sent < min(most, len(order)) && ctx.Err() == nil && time.Until(limit) > 100*time.Millisecond {
			more()
		}
	}
	cancel()
	for ; inFlight > 0; inFlight-- {
		<-replies // the other request ends with ctx
	}
	s.streams.prune()
	s.renewals.prune()
	if r.err != nil {
		return r.err
	}
	s.renewals.answered(r.ep)
	ttl := time.Duration(r.resp.TTL) * time.Second
	s.mu.Lock()
	// A reply processed after the deadline comes too late: the session may already have
	// been declared lost, and loss is for good.
	late := s.err == nil && isClosed(s.confirmed) && s.passed()
	if s.err == nil && !late {
		if !isClosed(s.confirmed) {
			close(s.confirmed)
		}
		// How long the renewal took to land, from its first request: a hedge that
		// answered first says nothing of that.
		s.slow = max(time.Since(start), s.slow*3/4)
		s.ttl = ttl
		if d := r.sent.Add(ttl - Margin(ttl)); d.After(s.deadline) {
			s.deadline = d
		}
	}
	s.mu.Unlock()
	if late {
		s.expire()
	}
	return nil
}

// Track registers a key on the lease, deleted if the session is lost while the lease
// may still live. Untrack forgets it.
func (s *Session) Track(key string) {
	s.mu.Lock()
	owed := s.err != nil && s.borrowed != nil
	s.keys[key] = owed
	s.mu.Unlock()
	if owed {
		s.wake()
	}
}

// Untrack forgets a key registered with Track.
func (s *Session) Untrack(key string) {
	s.mu.Lock()
	delete(s.keys, key)
	s.mu.Unlock()
}

// Drop deletes key so that it never blocks others: at once, waiting at most
// CleanupTimeout, and if that fails, in the background, with backoff, until the delete
// lands or the lease is gone (for a borrowed lease, even after Release), or etcd refuses
// it for good (see refused). A lost or released lease of our own needs nothing: it is
// revoked or left to expire, and the key goes with it.
func (s *Session) Drop(key string) {
	s.mu.Lock()
	gone := s.err != nil && s.borrowed == nil
	s.mu.Unlock()
	if gone {
		s.Untrack(key)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout(s.ttlOr(0)))
	_, err := s.remove(ctx, key)
	cancel()
	if s.refused("delete "+key, err) {
		s.Untrack(key)
	} else if err != nil {
		s.mu.Lock()
		s.keys[key] = true
		s.mu.Unlock()
		s.wake()
	}
}

// CallTimeout is how long a request of an acquisition or release (the grant, each
// read, the delete) waits for its answer before it is hedged (see hedged), and
// half the silence after which a watch of an acquisition is reopened: a sixth of the
// TTL (Margin), at least 1s and at most 3s. So a member that stops answering while the
// rest of the cluster serves holds an acquisition up about that long, not as long as
// it is silent.
func (s *Session) CallTimeout() time.Duration {
	return callTimeout(s.ttlOr(0))
}

func callTimeout(ttl time.Duration) time.Duration {
	return min(max(Margin(ttl), time.Second), 3*time.Second)
}

// CleanupTimeout bounds each wait for etcd in a cleanup: a third of the TTL, at least
// one second (and 2s when the TTL is not known yet).
func CleanupTimeout(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 2 * time.Second
	}
	return max(ttl/3, time.Second)
}

// remove deletes one of our keys: the one delete of a release or a cleanup. A plain
// delete suffices, as a key name is never used twice (see Claim.Acquire), so a retried
// or late delete can reach no later holding.
func (s *Session) remove(ctx context.Context, key string) (deleted bool, err error) {
	resp, err := s.cli.Delete(ctx, key)
	if err != nil {
		return false, err
	}
	s.Untrack(key)
	return resp.Deleted > 0, nil
}

// wake sets the janitor to work unless it is already.
func (s *Session) wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if isClosed(s.sweeping) {
		s.sweeping = make(chan struct{})
		go s.janitor(s.sweeping)
	}
}

// janitor deletes the keys owed a delete — every key once a borrowed session is lost —
// or, once a lease of our own is lost, revokes it, with backoff, until nothing is left
// to do. A closed client can delete and revoke nothing; a lease of our own is revoked
// by Release, and a borrowed one's keys outlive Release, not the caller's session.
func (s *Session) janitor(done chan struct{}) {
	defer close(done)
	ctx := s.ctx
	if s.borrowed != nil {
		ctx = s.borrowed.Ctx()
	}
	// Short: each try waits for etcd (CleanupTimeout) anyway, and a revoke or delete that
	// lands a moment after etcd answers again unblocks whoever waits behind our keys.
	b := backoff.New(50*time.Millisecond, 250*time.Millisecond)
	for retry := time.After(0); ; retry = time.After(b.Next()) {
		select {
		case <-ctx.Done():
		case <-retry:
		}
		s.mu.Lock()
		revoke := s.err != nil && s.borrowed == nil
		var owed []string
		for k, o := range s.keys {
			if o && !revoke {
				owed = append(owed, k)
			}
		}
		if ctx.Err() != nil || s.cli.Ctx().Err() != nil || isClosed(s.revoked) || (!revoke && len(owed) == 0) {
			s.sweeping = closedCh
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, CleanupTimeout(s.ttlOr(0)))
		if revoke {
			// We stopped renewing. Revoke as soon as etcd answers rather than let the lease
			// expire, so that nobody waits out a TTL behind our keys — for as long as it
			// takes: a leader change at etcd extends every lease by a TTL.
			if err := s.revoke(rctx); s.refused("revoke", err) {
				s.settle() // the lease expires within its TTL
			}
		}
		for _, k := range owed {
			if _, err := s.remove(rctx, k); s.refused("delete "+k, err) {
				s.Untrack(k)
			}
		}
		cancel()
	}
}

// refused reports whether etcd refused a cleanup for a reason that no retry can change,
// logging it: the janitor then gives it up instead of asking until the session ends.
// That is PermissionDenied (the user may no longer write the key, or every key on the
// lease, as a revoke needs), and InvalidArgument (a request etcd rejects as such: too
// large, bad credentials) but for ErrAuthOldRevision, which the client's next
// authentication cures. Not FailedPrecondition, which etcd also answers while a member
// is not leader or not capable yet, nor Unauthenticated (an expired token, renewed by
// the client), nor anything else: unavailable, timed out, no leader — those pass.
func (s *Session) refused(what string, err error) bool {
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	if code != codes.PermissionDenied && (code != codes.InvalidArgument || errors.Is(err, rpctypes.ErrAuthOldRevision)) {
		return false
	}
	s.lg.Warn("cleanup refused by etcd; given up", zap.Int64("lease", int64(s.lease)), zap.String("request", what), zap.Error(err))
	return true
}

// Release stops the tracker (of a borrowed session: once its last user releases it). A
// lease of our own is revoked, deleting every key on it; a borrowed one's keys still owed
// a delete are deleted, and what fails is left to the janitor, which goes on until the
// deletes land, etcd refuses them for good, or the caller's session ends. Either waits
// at most CleanupTimeout for etcd.
func (s *Session) Release() error { return s.ReleaseContext(context.Background()) }

// ReleaseContext is Release, waiting for etcd no longer than until ctx ends either.
func (s *Session) ReleaseContext(ctx context.Context) error {
	if s.borrowed != nil {
		sharedMu.Lock()
		s.refs--
		last := s.refs == 0
		if last && shared[s.borrowed] == s {
			delete(shared, s.borrowed)
		}
		sharedMu.Unlock()
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
	<-s.tracked
	s.fail(ErrClosed) // Lost closes; a borrowed session's keys are owed a delete
	ctx, cancel := context.WithTimeout(ctx, CleanupTimeout(s.ttlOr(0)))
	defer cancel()
	s.mu.Lock()
	sweeping := s.sweeping
	// A closed client can revoke nothing: a revoke sent while it shuts its connections
	// down would land or not by chance, and the lease expires within its TTL anyway.
	skip := isClosed(s.revoked) || (wasLost && time.Now().After(s.deadline.Add(s.ttl))) || s.cli.Ctx().Err() != nil
	s.mu.Unlock()
	if s.borrowed != nil {
		select {
		case <-sweeping:
		case <-ctx.Done():
		}
		return nil
	}
	<-sweeping
	if skip {
		return nil
	}
	if err := s.revoke(ctx); err != nil && !wasLost {
		return fmt.Errorf("revoke lease: %w", err)
	}
	return nil
}

func (s *Session) revoke(ctx context.Context) error {
	_, err := s.cli.Revoke(ctx, s.lease)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return err
	}
	s.settle()
	return nil
}

// settle records that our lease needs no revoke any more.
func (s *Session) settle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !isClosed(s.revoked) {
		close(s.revoked)
	}
}

// Retire releases a session its user has replaced. A lost lease of our own may live on
// at etcd (a leader change there extends every lease), its keys blocking whoever waits
// behind them: the janitor goes on revoking it until etcd answers, and Retire releases
// the session once it has, or once ctx ends.
func (s *Session) Retire(ctx context.Context) {
	if s.borrowed == nil && s.Err() != nil {
		select {
		case <-s.revoked:
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

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
