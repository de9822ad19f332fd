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
	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// Keeper holds one lease (or, with WithRegrant, a succession of leases) alive. The
// renewals and the definition of loss are those of the lock and election packages
// (internal/ownership): a lease is lost when etcd says it is gone, or a margin before
// etcd could expire it, counted from the send time of the last acknowledged renewal.
type Keeper struct {
	cli  *clientv3.Client
	ttl  time.Duration
	opts options

	cancel context.CancelFunc // stops the run goroutine
	exited chan struct{}      // closed when the run goroutine returns
	done   chan struct{}      // closed when the Keeper stops for good

	mu  sync.Mutex
	cur *ownership.Session
	err error

	closeOnce sync.Once
	closeErr  error // the revoke error of the first Close
}

// New grants a lease of ttl (at least one second and at most etcd's maximum of 9e9
// seconds; etcd counts in whole seconds and rounds up) and starts keeping it alive. ctx
// bounds only the grant.
func New(ctx context.Context, cli *clientv3.Client, ttl time.Duration, opts ...Option) (*Keeper, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if ttl < time.Second || ttl > ownership.MaxTTL {
		return nil, fmt.Errorf("%w: ttl %v is not within 1s and etcd's maximum %v", ErrInvalidArgument, ttl, ownership.MaxTTL)
	}
	o := defaults()
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidArgument)
		}
		opt.apply(&o)
	}
	if o.logger == nil {
		return nil, fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	}
	k := &Keeper{cli: cli, ttl: ttl, opts: o, exited: make(chan struct{}), done: make(chan struct{})}
	ses, err := ownership.Grant(ctx, cli, ttl, o.logger)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	k.cur = ses
	runCtx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	go k.run(runCtx, ses)
	return k, nil
}

// ID returns the current lease. After a re-grant it is the new lease.
func (k *Keeper) ID() clientv3.LeaseID {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur.Lease()
}

// TTL asks etcd for the remaining time to live of the current lease, in whole seconds
// as etcd counts it, rounded down: 0 is under a second left. It returns an error
// wrapping ErrLost when etcd no longer knows the lease.
func (k *Keeper) TTL(ctx context.Context) (time.Duration, error) {
	if ctx == nil {
		return 0, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	id := k.ID()
	resp, err := k.cli.TimeToLive(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return 0, fmt.Errorf("%w: lease %x not found", ErrLost, int64(id))
		}
		return 0, fmt.Errorf("lease: time to live of %x: %w", int64(id), err)
	}
	if resp.TTL < 0 { // -1: etcd does not know the lease; 0 is a live one's last second
		return 0, fmt.Errorf("%w: lease %x not found", ErrLost, int64(id))
	}
	return time.Duration(resp.TTL) * time.Second, nil
}

// Lost returns a channel closed when the current lease is lost (revoked, expired, or
// not renewed for so long that etcd may expire it) or revoked by Close. With re-grant,
// the next lease has a fresh channel: call Lost again after the hook has run.
func (k *Keeper) Lost() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur.Lost()
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

// Close stops the Keeper, revokes the current lease, waiting for etcd at most a third
// of the TTL (at least one second), and waits for the Keeper's goroutine. It returns the
// revoke error, if any, on the first call and nil afterwards. It must not be called from
// the re-grant hook.
func (k *Keeper) Close() error { return k.CloseContext(context.Background()) }

// CloseContext is Close, waiting for etcd no longer than until ctx ends either: a
// revoke etcd does not answer by then is given up, and the lease expires within its
// TTL (its keys with it).
func (k *Keeper) CloseContext(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	first := false
	k.closeOnce.Do(func() {
		first = true
		k.cancel()
		<-k.exited
		k.mu.Lock()
		ses := k.cur
		k.mu.Unlock()
		if err := ses.ReleaseContext(ctx); err != nil {
			k.closeErr = fmt.Errorf("lease: %x: %w", int64(ses.Lease()), err)
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

// lossOf says why ses was lost, in this package's terms.
func (k *Keeper) lossOf(ses *ownership.Session) error {
	if cerr := k.cli.Ctx().Err(); cerr != nil {
		return fmt.Errorf("%w: %w: %w", ErrLost, ErrClientClosed, cerr)
	}
	return fmt.Errorf("%w: lease %x: %w", ErrLost, int64(ses.Lease()), ses.Err())
}

// run waits for the loss of the current lease and then re-grants or stops.
func (k *Keeper) run(ctx context.Context, ses *ownership.Session) {
	defer close(k.exited)
	var retiring sync.WaitGroup
	defer retiring.Wait()
	for {
		select {
		case <-ses.Lost():
		case <-ctx.Done():
			return // Close revokes and finishes.
		}
		reason := k.lossOf(ses)
		k.opts.logger.Warn("lease lost", zap.Int64("lease", int64(ses.Lease())), zap.Error(reason))
		if k.opts.regrant == nil || k.cli.Ctx().Err() != nil {
			// Without re-grant, or without a client to re-grant with, this is the end.
			k.finish(reason)
			return
		}
		// The lost lease is no longer renewed, and revoked as soon as etcd answers, so
		// that its keys do not outlive our claim, while the next one is granted; Close
		// gives up waiting for that revoke at once.
		old := ses
		retiring.Add(1)
		go func() {
			defer retiring.Done()
			old.Retire(ctx)
		}()
		ses = k.regrant(ctx)
		if ses == nil {
			if ctx.Err() == nil {
				// The client closed under the re-grants: none can succeed any more.
				k.finish(k.lossOf(old))
			}
			return
		}
		k.mu.Lock()
		k.cur = ses
		k.mu.Unlock()
		k.runHook(ctx, ses)
	}
}

// regrant grants a new lease, retrying with backoff until it succeeds, ctx ends or the
// client is closed (nil then).
func (k *Keeper) regrant(ctx context.Context) *ownership.Session {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(k.cli.Ctx(), cancel)
	defer stop()
	b := backoff.New(k.opts.backoffMin, k.opts.backoffMax)
	for {
		gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
		ses, err := ownership.Grant(gctx, k.cli, k.ttl, k.opts.logger)
		gcancel()
		if err == nil {
			k.opts.logger.Info("lease re-granted", zap.Int64("lease", int64(ses.Lease())))
			return ses
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
func (k *Keeper) runHook(ctx context.Context, ses *ownership.Session) {
	b := backoff.New(k.opts.backoffMin, k.opts.backoffMax)
	for {
		err := k.opts.regrant(ctx, ses.Lease())
		if err == nil {
			return
		}
		k.opts.logger.Warn("lease re-grant hook failed", zap.Int64("lease", int64(ses.Lease())), zap.Error(err))
		t := time.NewTimer(b.Next())
		select {
		case <-t.C:
		case <-ses.Lost():
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

func isNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) ||
		rpctypes.ErrorDesc(err) == rpctypes.ErrLeaseNotFound.Error()
}
