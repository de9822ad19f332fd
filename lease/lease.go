package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
)

// maxRenewInterval caps the renewal interval, so that a revoked lease of a long TTL is
// noticed within about a second.
const maxRenewInterval = time.Second

// Keeper holds one lease (or, with WithRegrant, a succession of leases) alive.
type Keeper struct {
	cli  *clientv3.Client
	ttl  time.Duration
	opts options

	cancel context.CancelFunc // stops the run goroutine
	exited chan struct{}      // closed when the run goroutine returns
	done   chan struct{}      // closed when the Keeper stops for good

	mu  sync.Mutex
	cur *grant
	err error

	closeOnce sync.Once
	closeErr  error // the revoke error of the first Close
}

// grant is one lease and the signal of its loss.
type grant struct {
	id      clientv3.LeaseID
	ttl     time.Duration // as granted by etcd
	granted time.Time     // when the grant request was sent
	lost    chan struct{}
	once    sync.Once
	reason  error
}

func (g *grant) markLost(reason error) {
	g.once.Do(func() {
		g.reason = reason
		close(g.lost)
	})
}

func (g *grant) isLost() bool {
	select {
	case <-g.lost:
		return true
	default:
		return false
	}
}

// New grants a lease of ttl (at least one second; etcd counts in whole seconds and
// rounds up) and starts keeping it alive. ctx bounds only the grant.
func New(ctx context.Context, cli *clientv3.Client, ttl time.Duration, opts ...Option) (*Keeper, error) {
	if cli == nil {
		return nil, ErrNilClient
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("%w, got %v", ErrInvalidTTL, ttl)
	}
	o := defaults()
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	k := &Keeper{
		cli:    cli,
		ttl:    ttl,
		opts:   o,
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	g, err := k.grant(ctx)
	if err != nil {
		return nil, err
	}
	k.cur = g
	runCtx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	go k.run(runCtx, g)
	return k, nil
}

// ID returns the current lease. After a re-grant it is the new lease.
func (k *Keeper) ID() clientv3.LeaseID {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur.id
}

// TTL asks etcd for the remaining time to live of the current lease. It returns an
// error wrapping ErrLost when etcd no longer knows the lease.
func (k *Keeper) TTL(ctx context.Context) (time.Duration, error) {
	id := k.ID()
	resp, err := k.cli.TimeToLive(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return 0, fmt.Errorf("%w: lease %x not found", ErrLost, int64(id))
		}
		return 0, fmt.Errorf("lease: time to live of %x: %w", int64(id), err)
	}
	if resp.TTL <= 0 {
		return 0, fmt.Errorf("%w: lease %x not found", ErrLost, int64(id))
	}
	return time.Duration(resp.TTL) * time.Second, nil
}

// Lost returns a channel closed when the current lease is lost (revoked, expired, or not
// renewed within its TTL) or revoked by Close. With re-grant, the next lease has a fresh
// channel: call Lost again after the hook has run.
func (k *Keeper) Lost() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur.lost
}

// Done returns a channel closed when the Keeper stops for good: after Close, or when the
// lease is lost and re-grant is off.
func (k *Keeper) Done() <-chan struct{} { return k.done }

// Err returns nil while the Keeper runs, and after Done an error wrapping ErrLost or
// ErrClosed.
func (k *Keeper) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Close revokes the current lease (waiting at most two seconds for etcd), stops the
// Keeper and waits for its goroutine. It returns the revoke error, if any, on the first
// call and nil afterwards. It must not be called from the re-grant hook.
func (k *Keeper) Close() error {
	first := false
	k.closeOnce.Do(func() {
		first = true
		k.cancel()
		<-k.exited
		k.mu.Lock()
		g := k.cur
		k.mu.Unlock()
		if !g.isLost() {
			ctx, cancel := context.WithTimeout(context.Background(), k.opts.revokeTimeout)
			_, err := k.cli.Revoke(ctx, g.id)
			cancel()
			if err != nil && !isNotFound(err) {
				k.closeErr = fmt.Errorf("lease: revoke %x: %w", int64(g.id), err)
			}
			g.markLost(ErrClosed)
		}
		k.finish(ErrClosed)
	})
	if !first {
		return nil
	}
	return k.closeErr
}

// finish records why the Keeper stopped (the first reason wins) and closes Done.
func (k *Keeper) finish(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err == nil {
		k.err = err
		close(k.done)
	}
}

func (k *Keeper) grant(ctx context.Context) (*grant, error) {
	secs := int64((k.ttl + time.Second - 1) / time.Second)
	sent := time.Now()
	resp, err := k.cli.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("lease: grant %ds: %w", secs, err)
	}
	return &grant{
		id:      resp.ID,
		ttl:     time.Duration(resp.TTL) * time.Second,
		granted: sent,
		lost:    make(chan struct{}),
	}, nil
}

// run keeps the current lease alive and, on loss, re-grants or stops.
func (k *Keeper) run(ctx context.Context, g *grant) {
	defer close(k.exited)
	needHook := false
	for {
		kctx, kcancel := context.WithCancel(ctx)
		kdone := make(chan struct{})
		go func() {
			defer close(kdone)
			k.keepAlive(kctx, g)
		}()
		if needHook {
			k.runHook(ctx, g)
		}
		select {
		case <-g.lost:
		case <-ctx.Done():
		}
		kcancel()
		<-kdone
		if ctx.Err() != nil {
			return // Close revokes and finishes.
		}
		k.opts.logger.Warn("lease lost", zap.Int64("lease", int64(g.id)), zap.Error(g.reason))
		if k.opts.regrant == nil || k.cli.Ctx().Err() != nil {
			// Without re-grant, or without a client to re-grant with, this is the end.
			k.finish(g.reason)
			return
		}
		// The lease is given up: revoke it so that its keys do not outlive our claim.
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		_, _ = k.cli.Revoke(rctx, g.id)
		rcancel()
		ng := k.regrant(ctx)
		if ng == nil {
			return
		}
		k.mu.Lock()
		k.cur = ng
		k.mu.Unlock()
		g = ng
		needHook = true
	}
}

// regrant grants a new lease, retrying with backoff until it succeeds or ctx ends.
func (k *Keeper) regrant(ctx context.Context) *grant {
	b := backoff.New(k.opts.backoffMin, k.opts.backoffMax)
	for {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		g, err := k.grant(gctx)
		cancel()
		if err == nil {
			k.opts.logger.Info("lease re-granted", zap.Int64("lease", int64(g.id)))
			return g
		}
		if ctx.Err() != nil {
			return nil
		}
		k.opts.logger.Warn("lease re-grant failed", zap.Error(err))
		if !b.Wait(ctx) {
			return nil
		}
	}
}

// runHook calls the re-grant hook until it succeeds, the lease is lost again, or ctx ends.
func (k *Keeper) runHook(ctx context.Context, g *grant) {
	b := backoff.New(k.opts.backoffMin, k.opts.backoffMax)
	for {
		err := k.opts.regrant(ctx, g.id)
		if err == nil {
			return
		}
		k.opts.logger.Warn("lease re-grant hook failed", zap.Int64("lease", int64(g.id)), zap.Error(err))
		t := time.NewTimer(b.Next())
		select {
		case <-t.C:
		case <-g.lost:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// keepAlive renews g every interval until ctx ends or g is lost. g counts as lost when
// etcd says it does not exist, or when the deadline of the last acknowledged renewal
// passes without a new acknowledgement.
func (k *Keeper) keepAlive(ctx context.Context, g *grant) {
	interval := min(g.ttl/3, maxRenewInterval)
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	attemptMax := max(interval, 500*time.Millisecond)
	deadline := g.granted.Add(g.ttl)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		b := backoff.New(50*time.Millisecond, interval)
		for {
			now := time.Now()
			if !now.Before(deadline) {
				g.markLost(fmt.Errorf("%w: lease %x not renewed within its TTL of %v", ErrLost, int64(g.id), g.ttl))
				return
			}
			actx, cancel := context.WithTimeout(ctx, min(deadline.Sub(now), attemptMax))
			resp, err := k.cli.KeepAliveOnce(actx, g.id)
			cancel()
			if err == nil {
				deadline = now.Add(time.Duration(resp.TTL) * time.Second)
				break
			}
			if ctx.Err() != nil {
				return
			}
			if cerr := k.cli.Ctx().Err(); cerr != nil {
				g.markLost(fmt.Errorf("%w: %w: %w", ErrLost, ErrClientClosed, cerr))
				return
			}
			if isNotFound(err) {
				g.markLost(fmt.Errorf("%w: lease %x revoked or expired", ErrLost, int64(g.id)))
				return
			}
			k.opts.logger.Debug("lease renewal failed", zap.Int64("lease", int64(g.id)), zap.Error(err))
			wait := min(b.Next(), time.Until(deadline))
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		timer.Reset(interval)
	}
}

func isNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) ||
		rpctypes.ErrorDesc(err) == rpctypes.ErrLeaseNotFound.Error()
}
