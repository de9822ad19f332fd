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
// closes: api.shutdown_timeout, and on a replica at most an eighth of the lease TTL, so
// that an engine whose term ended is done before the lease can expire in PostgreSQL
// (the replica stops it a quarter TTL ahead). What it could not send stays due in the
// store and the next term sends it.
func (c *Config) engineShutdownTimeout() time.Duration {
	if c.Store.Type == store.TypePostgres {
		return min(c.API.ShutdownTimeout, c.leaseTTL()/8)
	}
	return c.API.ShutdownTimeout
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

// run campaigns until ctx ends. While this replica holds the lease, term runs on its
// own goroutine with a store whose alert-state writes are fenced by the lease's term,
// and a context that ends when the term does: the lease was lost, or could not be
// renewed until a quarter TTL before this replica's own (conservative) deadline, or
// ctx ended. Ending early leaves term that quarter to stop (an alert engine closes with
// a shutdown timeout under it), so two terms never overlap while PostgreSQL's clock and
// ours run at the same rate. run waits for term before it campaigns again, and when
// ctx ends it releases the lease, so a standby takes over at once.
func (r *replica) run(ctx context.Context, term func(ctx context.Context, st store.Store)) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		ok, err := r.lease.Acquire(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("replica: cannot reach the lease", zap.Error(err))
			r.set(false, "")
		case ok:
			r.lead(ctx, term)
		default:
			r.observe(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// observe records who is active, for status.
func (r *replica) observe(ctx context.Context) {
	info, err := r.lease.Info(ctx)
	switch {
	case err != nil:
		r.set(false, "")
	case info.Expired:
		r.set(false, "")
	default:
		r.set(false, info.Holder)
	}
}

func (r *replica) lead(ctx context.Context, term func(ctx context.Context, st store.Store)) {
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		term(termCtx, fenced)
	}()
	renew := time.NewTicker(r.every)
	defer renew.Stop()
	why := r.keep(ctx, renew.C, done)
	cancel()
	<-done
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
	errTermEnded  = errors.New("the alert engine stopped by itself")
	errNoRenewal  = errors.New("the lease could not be renewed in time")
	errShutdown   = errors.New("shutting down")
	errLeaseTaken = postgres.ErrLeaseLost
)

// keep renews the lease until it is lost or due to end, the term ends, or ctx ends;
// it says which.
func (r *replica) keep(ctx context.Context, renew <-chan time.Time, done <-chan struct{}) error {
	for {
		stop := time.NewTimer(time.Until(r.lease.Deadline().Add(-r.every)))
		select {
		case <-ctx.Done():
			stop.Stop()
			return errShutdown
		case <-done:
			stop.Stop()
			return errTermEnded
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
			case err != nil && ctx.Err() == nil:
				r.log.Warn("replica: lease renewal failed; retrying", zap.Error(err), zap.Time("deadline", r.lease.Deadline()))
			}
		}
	}
}
