package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// Replicas: several daemons on one PostgreSQL store all monitor and serve the API;
// exactly one of them, the holder of the "alerting" lease, runs the alert engine
// (evaluates and notifies). The lease is a row in PostgreSQL with an expiry and a
// token (see postgres.Lease for why not an advisory lock); the engine's writes of
// alert state and of the notification log are fenced by the token, and the engine
// loads that state from the store when it starts, so a standby that takes over
// neither re-sends what was sent nor forgets a resolve that is due.
//
// A term never notifies past the lease: the engine gets, besides the term's context,
// the lease's own, which ends an eighth of the TTL before this replica's deadline (its
// last successful renewal plus the TTL, on the monotonic clock, never later than the
// expiry PostgreSQL keeps), or at once when the lease was taken or a fenced write was
// refused. Every store write of the term and every send ends with it (see
// monitor.Service.RunAlertsLeased), so nothing leaves a deposed replica once a standby
// could take the lease. Not covered: a machine suspended for longer than the TTL stops
// the monotonic clock and Go's timers but not PostgreSQL's clock, so after waking the
// replica may notify until its next renewal is refused (at most a quarter TTL); and a
// send a receiver had already begun when the lease ended is not recalled.
//
// History: every replica monitors, but one writes history to the store, so that no
// period is stored twice: the one that last held the lease as far as it knows. It
// keeps writing after it stepped down (PostgreSQL unreachable: the store queues the
// records up to its bounds, and drops and counts the rest in
// etcd_monitor_store_dropped_total), until it sees another replica hold the lease. A
// replica that has not yet read the lease (it opened the store, then PostgreSQL went
// away before its first campaign), or reads it naming another holder, expired or not,
// writes nothing: the one named, if alive, is writing. So a PostgreSQL restart leaves no
// gap: the last holder queued the outage; if another replica wins the lease when
// PostgreSQL is back, both write until the old holder's next campaign (a quarter TTL)
// sees it, a few records stored twice. When the writer dies, its records not yet written
// (a second's batch and the store's queue) are lost, and nobody writes until a standby
// takes the lease, up to 1.25 x LeaseTTL; the new holder, and any replica whose gate
// opens, first writes its own records in memory newer than the store's newest (monitor
// keeps the last memory_history of each kind), so that no gap is left shorter than what
// it holds.

// ReplicaConfig is the replica: block of the configuration (type postgres only).
type ReplicaConfig struct {
	// ID names this daemon among the replicas; default <hostname>-<pid>-<random>. It
	// must be unique per process.
	ID string `yaml:"id"`
	// LeaseTTL is how long the active replica keeps the lease without renewing it:
	// a standby takes over within 1.25 x LeaseTTL of the active one's death. Default:
	// the health check interval; at least 1s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// leaseTTL is replica.lease_ttl, by default the health check interval, at least 1s.
func (c *Config) leaseTTL() time.Duration {
	if c.Replica.LeaseTTL > 0 {
		return max(c.Replica.LeaseTTL, time.Second)
	}
	return max(c.Monitor.HealthCheckInterval, time.Second)
}

// engineShutdownTimeout bounds how long the alert engine sends what is queued when it
// closes: api.shutdown_timeout, and on a replica at most an eighth of the lease TTL (and
// never past the term's lease, which ends an eighth of the TTL before this replica's
// deadline), so that an engine whose term ended is done before the lease can expire in
// PostgreSQL (the replica stops it a quarter TTL ahead). What it could not send stays
// due in the store and the next term sends it.
func (c *Config) engineShutdownTimeout() time.Duration {
	if c.Store.Type == store.TypePostgres {
		return min(c.API.ShutdownTimeout, c.leaseTTL()/8)
	}
	return c.API.ShutdownTimeout
}

// termWindDown is how long a term's engine may send what is queued when the term ends:
// engineShutdownTimeout when the term lost its lease or could not renew it in time, and
// until the daemon's shutdown deadline when it stops (stopBy says when, ok true), since
// the replica then renews the lease until the term is over (replica.lead). Never past
// the lease.
func (c *Config) termWindDown(stopBy func() (deadline time.Time, ok bool)) func() time.Duration {
	return func() time.Duration {
		d := c.engineShutdownTimeout()
		if by, ok := stopBy(); ok {
			d = max(d, time.Until(by))
		}
		return d
	}
}

// alertingLease names the lease that elects the alerting replica.
const alertingLease = "alerting"

// replica campaigns for the alerting lease and runs the alert engine's terms.
type replica struct {
	id    string
	lease *postgres.Lease
	every time.Duration // renewal and campaign period: a quarter of the TTL
	log   *zap.Logger

	mu       sync.Mutex
	active   bool
	activeID string
	writer   bool // writes history: see writesHistory
}

// newReplica returns the replica id (defaultReplicaID() when empty) of the store's
// alerting lease with ttl.
func newReplica(st *postgres.Store, id string, ttl time.Duration, log *zap.Logger) (*replica, error) {
	if id == "" {
		id = defaultReplicaID()
	}
	l, err := st.NewLease(alertingLease, id, ttl)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	// A replica writes history once the lease says it is the last holder (writesHistory).
	return &replica{id: id, lease: l, every: ttl / 4, log: log.With(zap.String("replica", id))}, nil
}

func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "etcd-monitor"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// status is what GET /health says about the replicas.
func (r *replica) status() monitor.ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	held, _ := r.lease.Held()
	s := monitor.ReplicaStatus{ID: r.id, Active: r.active && held, ActiveID: r.activeID}
	if s.Active {
		s.ActiveID = r.id
	}
	return s
}

func (r *replica) set(active bool, activeID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active, r.activeID = active, activeID
}

// writesHistory is the replica's history gate (monitor.WithHistoryGate): true while
// this replica is the last holder of the lease it knows of (see the comment at the top
// of the file); false until it has read the lease.
func (r *replica) writesHistory() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writer
}

// setWriter records what the lease said about who writes history; a lease that could
// not be read changes nothing.
func (r *replica) setWriter(w bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writer = w
}

// term is what a replica runs while it holds the lease: ctx ends when the term should
// stop (wind down), lease when the lease can no longer be counted on (stop at once);
// st is the store fenced by the term.
type term func(ctx, lease context.Context, st store.Store)

// run campaigns until ctx ends. While this replica holds the lease, term runs on its
// own goroutine with a store whose alert-state writes are fenced by the lease's term,
// a context that ends when the term should stop: the lease was lost, or could not be
// renewed until a quarter TTL before this replica's own (conservative) deadline, or
// ctx ended; and the lease's context, which ends an eighth of the TTL before that
// deadline (pushed back by each renewal), or at once when the lease was taken or a
// fenced write refused. Stopping a quarter early leaves term an eighth to wind down
// within the lease, and the lease's end an eighth of margin before PostgreSQL's
// expiry, so two terms never overlap while PostgreSQL's clock and ours run at the same
// rate. run waits for term before it campaigns again, and when ctx ends it releases the
// lease, so a standby takes over at once.
func (r *replica) run(ctx context.Context, term term) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		ok, err := r.lease.Acquire(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("replica: cannot reach the lease", zap.Error(err))
			r.set(false, "")
		case err != nil:
		case ok:
			r.setWriter(true)
			r.lead(ctx, term)
		default:
			// Acquire refuses only while another replica holds the lease unexpired.
			r.setWriter(false)
			r.observe(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// observe records who is active, for status, and whether this replica writes history.
func (r *replica) observe(ctx context.Context) {
	info, err := r.lease.Info(ctx)
	if err != nil {
		r.set(false, "")
		return
	}
	active := info.Holder
	if info.Expired {
		active = "" // the holder may be dead: the next campaign takes the lease
	}
	r.set(false, active)
	r.setWriter(info.Holder == r.id)
}

func (r *replica) lead(ctx context.Context, term term) {
	// A term needs time to stop before its lease ends: none starts with a campaign
	// period or less left (Acquire may have waited for PostgreSQL most of the TTL). The
	// next campaign renews the lease and starts it.
	if time.Until(r.lease.Deadline()) <= r.every {
		return
	}
	fenced, err := r.lease.Fenced()
	if err != nil {
		return // expired between Acquire and now: campaign again
	}
	_, token := r.lease.Held()
	r.log.Info("replica: active: running the alert engine", zap.Int64("term", token))
	r.set(true, r.id)
	termCtx, cancel := context.WithCancel(ctx)
	leaseCtx, endLease := context.WithCancelCause(context.WithoutCancel(ctx))
	margin := r.every / 2
	expire := time.AfterFunc(time.Until(r.lease.Deadline())-margin, func() { endLease(errLeaseRunOut) })
	st := fencedStore{Fenced: fenced, off: func(err error) { endLease(fmt.Errorf("%w: %w", errFencedOff, err)) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		term(termCtx, leaseCtx, st)
	}()
	renew := time.NewTicker(r.every)
	defer renew.Stop()
	renewed := func() { expire.Reset(time.Until(r.lease.Deadline()) - margin) }
	why := r.keep(ctx, renew.C, done, leaseCtx, renewed)
	if errors.Is(why, errLeaseTaken) {
		endLease(why) // another replica may be active already
	}
	cancel()
	if why == errShutdown {
		// A graceful stop: the lease is still this replica's, and is renewed while the
		// term winds down, so that what it sends and records before it ends (a page
		// delivered a moment ago, whose record is still being written) is not cut off
		// by the lease and sent again by the next term. Lost or not renewable, it ends
		// the term as it would have.
		if end := r.keep(context.WithoutCancel(ctx), renew.C, done, leaseCtx, renewed); end != errTermEnded {
			endLease(end)
		}
	}
	<-done
	expire.Stop()
	endLease(why)
	r.set(false, "")
	if ctx.Err() != nil || why == errTermEnded {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), r.lease.TTL())
		if err := r.lease.Release(rctx); err != nil {
			r.log.Warn("replica: release the lease", zap.Error(err))
		}
		rcancel()
	}
	r.log.Info("replica: standby: alert engine stopped", zap.Int64("term", token), zap.NamedError("reason", why))
}

var (
	errTermEnded   = errors.New("the alert engine stopped by itself")
	errNoRenewal   = errors.New("the lease could not be renewed in time")
	errLeaseRunOut = errors.New("the lease runs out: an eighth of the TTL left")
	errFencedOff   = errors.New("a write of the term was fenced off: the lease is another's")
	errShutdown    = errors.New("shutting down")
	errLeaseTaken  = postgres.ErrLeaseLost
)

// keep renews the lease until it is lost or due to end, the term ends, the lease's
// context ends (fenced off), or ctx ends; it says which. renewed is called after each
// renewal.
func (r *replica) keep(ctx context.Context, renew <-chan time.Time, done <-chan struct{}, lease context.Context, renewed func()) error {
	for {
		stop := time.NewTimer(time.Until(r.lease.Deadline().Add(-r.every)))
		select {
		case <-ctx.Done():
			stop.Stop()
			return errShutdown
		case <-done:
			stop.Stop()
			return errTermEnded
		case <-lease.Done():
			stop.Stop()
			return context.Cause(lease)
		case <-stop.C:
			return errNoRenewal
		case <-renew:
			stop.Stop()
			// A renewal that hangs (PostgreSQL stalls) must not keep the term past its
			// stop time, or it outlives the lease: it gets until then.
			rctx, cancel := context.WithDeadline(ctx, r.lease.Deadline().Add(-r.every))
			err := r.lease.Renew(rctx)
			cancel()
			switch {
			case errors.Is(err, postgres.ErrLeaseLost):
				return errLeaseTaken
			case err == nil:
				renewed()
			case ctx.Err() == nil:
				r.log.Warn("replica: lease renewal failed; retrying", zap.Error(err), zap.Time("deadline", r.lease.Deadline()))
			}
		}
	}
}

// fencedStore is the term's store: a write refused as fenced off (the lease is another
// replica's now) ends the term's lease at once, so the engine stops notifying.
type fencedStore struct {
	*postgres.Fenced
	off func(error)
}

func (f fencedStore) check(err error) error {
	if errors.Is(err, postgres.ErrFenced) {
		f.off(err)
	}
	return err
}

func (f fencedStore) PutAlerts(ctx context.Context, put []store.Alert, del []string) error {
	return f.check(f.Fenced.PutAlerts(ctx, put, del))
}

func (f fencedStore) PutGroup(ctx context.Context, g store.Group) error {
	return f.check(f.Fenced.PutGroup(ctx, g))
}

func (f fencedStore) DeleteGroup(ctx context.Context, receiver, key string) error {
	return f.check(f.Fenced.DeleteGroup(ctx, receiver, key))
}

func (f fencedStore) AppendNotification(ctx context.Context, n store.Notification) (store.Notification, error) {
	n, err := f.Fenced.AppendNotification(ctx, n)
	return n, f.check(err)
}

func (f fencedStore) PutSilence(ctx context.Context, sil store.Silence) error {
	return f.check(f.Fenced.PutSilence(ctx, sil))
}

func (f fencedStore) DeleteSilence(ctx context.Context, id string) error {
	return f.check(f.Fenced.DeleteSilence(ctx, id))
}

// windDown returns lease, ended also d() after ctx ends: a term's engine sends what is
// queued at its end for at most that long (see Config.termWindDown), and never past
// the lease. Call stop when the term is over.
func windDown(ctx, lease context.Context, d func() time.Duration) (_ context.Context, stop func()) {
	out, cancel := context.WithCancelCause(lease)
	unwatch := context.AfterFunc(ctx, func() {
		d := d()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			cancel(fmt.Errorf("the term's wind-down took %v", d))
		case <-out.Done():
		}
	})
	return out, func() {
		unwatch()
		cancel(nil)
	}
}
