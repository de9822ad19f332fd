package discovery

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
	"github.com/etcd-monitor/etcd-monitor/lease"
	"github.com/etcd-monitor/etcd-monitor/watch"
)

// Registrar registers instances under <prefix>/<service>/<id> and keeps each one there
// until Deregister or Close, whatever happens to etcd in between.
type Registrar struct {
	cli    *clientv3.Client
	prefix string
	opts   options
	log    *zap.Logger

	regMu  sync.Mutex // serialises Register, Deregister, Drain and Close
	mu     sync.Mutex // guards regs and closed
	regs   map[string]*registration
	closed bool
}

// NewRegistrar returns a Registrar writing under prefix. It owns no goroutine until the
// first Register.
func NewRegistrar(cli *clientv3.Client, prefix string, opts ...Option) (*Registrar, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidOption)
	}
	if prefix == "" || prefix == "/" {
		return nil, fmt.Errorf("%w: empty prefix", ErrInvalidOption)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Registrar{cli: cli, prefix: normPrefix(prefix), opts: o, log: o.logger, regs: map[string]*registration{}}, nil
}

// Key returns the etcd key an instance is registered under.
func (r *Registrar) Key(inst Instance) string { return instanceKey(r.prefix, inst.Service, inst.ID) }

// Register writes inst under a lease of the Registrar's TTL and returns once it is in
// etcd. From then on a goroutine keeps it there: when the lease is lost (revoked, or
// expired during an outage) it grants a new one and writes the key again; when the key
// is deleted or overwritten it writes it again; failed attempts are retried with
// jittered backoff and no cap, until Deregister or Close.
//
// Registering an instance that is already registered replaces its value. ctx bounds only
// the first write; if it fails, nothing stays behind.
func (r *Registrar) Register(ctx context.Context, inst Instance) error {
	if err := inst.Validate(); err != nil {
		return err
	}
	inst = inst.clone()
	value, err := inst.marshal()
	if err != nil {
		return fmt.Errorf("discovery: encode instance: %w", err)
	}
	key := r.Key(inst)

	r.regMu.Lock()
	defer r.regMu.Unlock()
	r.mu.Lock()
	closed, g := r.closed, r.regs[key]
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if g != nil {
		return g.update(ctx, inst, value)
	}

	g = &registration{
		r:     r,
		key:   key,
		inst:  inst,
		value: value,
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		log:   r.log.With(zap.String("key", key)),
	}
	keeper, err := lease.New(ctx, r.cli, r.opts.ttl, lease.WithRegrant(g.onRegrant), lease.WithLogger(r.log))
	if err != nil {
		return fmt.Errorf("discovery: register %s: grant lease: %w", key, err)
	}
	g.keeper = keeper
	g.leaseID = keeper.ID()
	rev, err := g.put(ctx)
	if err != nil {
		keeper.Close()
		return fmt.Errorf("discovery: register %s: %w", key, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go g.run(runCtx, rev)

	r.mu.Lock()
	r.regs[key] = g
	r.mu.Unlock()
	return nil
}

// Deregister stops keeping inst registered, revokes its lease and deletes its key.
func (r *Registrar) Deregister(ctx context.Context, inst Instance) error {
	key := r.Key(inst)
	r.regMu.Lock()
	defer r.regMu.Unlock()
	r.mu.Lock()
	g := r.regs[key]
	delete(r.regs, key)
	r.mu.Unlock()
	if g == nil {
		return fmt.Errorf("%w: %s", ErrNotRegistered, key)
	}
	return g.stop(ctx)
}

// Drain marks inst drained (drained true) or back in service (false): it stays
// registered, but balancers and the gRPC resolver stop picking it.
func (r *Registrar) Drain(ctx context.Context, inst Instance, drained bool) error {
	key := r.Key(inst)
	r.regMu.Lock()
	defer r.regMu.Unlock()
	r.mu.Lock()
	g := r.regs[key]
	r.mu.Unlock()
	if g == nil {
		return fmt.Errorf("%w: %s", ErrNotRegistered, key)
	}
	g.mu.Lock()
	next := g.inst.clone()
	g.mu.Unlock()
	next.Drained = drained
	value, err := next.marshal()
	if err != nil {
		return fmt.Errorf("discovery: encode instance: %w", err)
	}
	return g.update(ctx, next, value)
}

// Registered returns the instances this Registrar is keeping registered.
func (r *Registrar) Registered() []Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Instance, 0, len(r.regs))
	for _, g := range r.regs {
		g.mu.Lock()
		out = append(out, g.inst.clone())
		g.mu.Unlock()
	}
	return out
}

// Close deregisters every instance (revoking leases and deleting keys, each bounded by a
// few seconds) and stops every goroutine. It is idempotent.
func (r *Registrar) Close() error {
	r.regMu.Lock()
	defer r.regMu.Unlock()
	r.mu.Lock()
	r.closed = true
	regs := r.regs
	r.regs = map[string]*registration{}
	r.mu.Unlock()
	var errs []error
	for _, g := range regs {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		errs = append(errs, g.stop(ctx))
		cancel()
	}
	return errors.Join(errs...)
}

// registration keeps one key in place.
type registration struct {
	r      *Registrar
	key    string
	keeper *lease.Keeper // replaced only by run
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: write the value again
	done   chan struct{} // closed when run returns
	log    *zap.Logger

	putMu sync.Mutex // orders writes, so the last one carries the newest lease and value

	mu      sync.Mutex
	inst    Instance
	value   string
	leaseID clientv3.LeaseID
	stopped bool
}

func (g *registration) current() (string, clientv3.LeaseID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.value, g.leaseID
}

// put writes the value under the current lease and returns the revision of the write.
func (g *registration) put(ctx context.Context) (int64, error) {
	g.putMu.Lock()
	defer g.putMu.Unlock()
	g.mu.Lock()
	value, id, stopped := g.value, g.leaseID, g.stopped
	g.mu.Unlock()
	if stopped {
		return 0, ErrClosed
	}
	resp, err := g.r.cli.Put(ctx, g.key, value, clientv3.WithLease(id))
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// onRegrant runs on the Keeper's goroutine after it granted a new lease for a lost one.
func (g *registration) onRegrant(ctx context.Context, id clientv3.LeaseID) error {
	g.mu.Lock()
	g.leaseID = id
	g.mu.Unlock()
	_, err := g.put(ctx)
	if err == nil {
		g.log.Info("re-registered on a new lease", zap.Int64("lease", int64(id)))
	}
	return err
}

func (g *registration) update(ctx context.Context, inst Instance, value string) error {
	g.mu.Lock()
	g.inst, g.value = inst, value
	g.mu.Unlock()
	_, err := g.put(ctx)
	if err != nil {
		// The run loop will keep trying; the caller still learns this write failed.
		g.wake()
		return fmt.Errorf("discovery: update %s: %w", g.key, err)
	}
	return nil
}

func (g *registration) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// stop ends the run loop, revokes the lease and deletes the key.
func (g *registration) stop(ctx context.Context) error {
	g.cancel()
	<-g.done
	g.mu.Lock()
	g.stopped = true // from now on put refuses to write
	g.mu.Unlock()
	kerr := g.keeper.Close()
	if errors.Is(kerr, lease.ErrClosed) || errors.Is(kerr, lease.ErrLost) {
		kerr = nil
	}
	// Wait out a write that passed the check before stopped was set.
	g.putMu.Lock()
	defer g.putMu.Unlock()
	if _, err := g.r.cli.Delete(ctx, g.key); err != nil {
		return fmt.Errorf("discovery: deregister %s: %w", g.key, errors.Join(err, kerr))
	}
	return nil
}

// run watches the key and the lease and writes the key again whenever it is not in place.
func (g *registration) run(ctx context.Context, fromRev int64) {
	defer close(g.done)
	bo := backoff.New(g.r.opts.backoffMin, g.r.opts.backoffMax)
	verifyEvery := g.r.opts.ttl / 2
	verify := time.NewTicker(verifyEvery)
	defer verify.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()

	var w *watch.Watcher
	startWatch := func(rev int64) {
		opts := []watch.Option{watch.WithLogger(g.log)}
		if rev > 0 {
			opts = append(opts, watch.WithStartRevision(rev))
		}
		nw, err := watch.NewWatcher(g.r.cli, g.key, opts...)
		if err != nil {
			g.log.Warn("watch registration key", zap.Error(err))
			w = nil
			return
		}
		w = nw
	}
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	startWatch(fromRev + 1)

	var leaseMissingSince time.Time
	keeperDead := false // the client is closed: no Keeper can be made
	// ensure writes the key; on failure it arms the retry timer.
	ensure := func() {
		if ctx.Err() != nil || g.r.cli.Ctx().Err() != nil {
			// Stopping, or the client was closed: nothing can be written any more, and a
			// write racing the client's shutdown must not resurrect the key.
			return
		}
		pctx, cancel := context.WithTimeout(ctx, g.r.opts.ttl)
		_, err := g.put(pctx)
		cancel()
		if err == nil {
			bo.Reset()
			leaseMissingSince = time.Time{}
			return
		}
		if ctx.Err() != nil {
			return
		}
		g.log.Debug("registration write failed", zap.Error(err))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The Keeper re-grants when it notices the loss; if it has not after a TTL,
			// replace it.
			if leaseMissingSince.IsZero() {
				leaseMissingSince = time.Now()
			} else if time.Since(leaseMissingSince) > g.r.opts.ttl {
				if !g.replaceKeeper(ctx, bo) {
					keeperDead = true
					return
				}
				leaseMissingSince = time.Time{}
			}
		}
		retry.Reset(bo.Next())
	}
	// check compares what etcd holds with what should be there.
	check := func(kv *watch.KV) {
		value, id := g.current()
		if kv == nil || string(kv.Value) != value || clientv3.LeaseID(kv.Lease) != id {
			ensure()
		}
	}

	var watchRetry <-chan time.Time
	for {
		var events <-chan watch.Event
		if w != nil {
			events = w.Events()
		}
		keeperDone := g.keeper.Done()
		if keeperDead {
			keeperDone = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-g.kick:
			ensure()
		case <-retry.C:
			ensure()
		case <-verify.C:
			vctx, cancel := context.WithTimeout(ctx, verifyEvery)
			resp, err := g.r.cli.Get(vctx, g.key)
			cancel()
			if err != nil {
				continue
			}
			if len(resp.Kvs) == 0 {
				check(nil)
			} else {
				kv := resp.Kvs[0]
				check(&watch.KV{Key: string(kv.Key), Value: kv.Value, Lease: kv.Lease})
			}
		case <-keeperDone:
			// The Keeper stopped for good (it re-grants by itself otherwise).
			if g.replaceKeeper(ctx, bo) {
				ensure()
			} else {
				keeperDead = true
			}
		case ev, ok := <-events:
			if !ok {
				err := w.Err()
				w.Close()
				w = nil
				if g.r.cli.Ctx().Err() != nil {
					g.log.Warn("client closed; registration no longer maintained", zap.Error(err))
					continue
				}
				g.log.Warn("registration watch ended; restarting", zap.Error(err))
				watchRetry = time.After(bo.Next())
				ensure()
				continue
			}
			switch ev.Type {
			case watch.Delete:
				ensure()
			case watch.Put:
				kv := ev.KV
				check(&kv)
			case watch.Resync:
				var found *watch.KV
				for i := range ev.State {
					if ev.State[i].Key == g.key {
						found = &ev.State[i]
					}
				}
				check(found)
			}
		case <-watchRetry:
			watchRetry = nil
			startWatch(0)
			if w == nil {
				watchRetry = time.After(bo.Next())
			}
			ensure()
		}
	}
}

// replaceKeeper closes the current Keeper and grants a new lease, retrying with backoff
// until it succeeds (true), ctx ends or the client is closed (false).
func (g *registration) replaceKeeper(ctx context.Context, bo *backoff.Backoff) bool {
	old := g.keeper
	old.Close()
	for {
		if ctx.Err() != nil || g.r.cli.Ctx().Err() != nil {
			// Leave the closed Keeper in place; stop's Close of it is a no-op.
			return false
		}
		gctx, cancel := context.WithTimeout(ctx, g.r.opts.ttl)
		k, err := lease.New(gctx, g.r.cli, g.r.opts.ttl, lease.WithRegrant(g.onRegrant), lease.WithLogger(g.log))
		cancel()
		if err == nil {
			g.keeper = k
			g.mu.Lock()
			g.leaseID = k.ID()
			g.mu.Unlock()
			return true
		}
		g.log.Debug("grant lease", zap.Error(err))
		bo.Wait(ctx)
	}
}
