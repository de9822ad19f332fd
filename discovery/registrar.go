package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
//
// Two Registrars may hold the same instance, for example during a rolling restart that
// keeps instance IDs: the newest Register wins. The other one yields: it does not write
// the key while a registration on another lease holds it, and writes it again once the
// key is gone (the winner deregistered or died).
type Registrar struct {
	cli    *clientv3.Client
	prefix string
	opts   options
	log    *zap.Logger

	ctx    context.Context // ends when Close starts; every call's etcd requests are bound to it
	cancel context.CancelFunc

	regMu     sync.Mutex // serialises Register, Deregister, Drain, Undrain and Close
	mu        sync.Mutex // guards regs and closed
	regs      map[string]*registration
	closed    bool
	closeOnce sync.Once
}

// NewRegistrar returns a Registrar writing under prefix. It owns no goroutine until the
// first Register. Of the options, WithLogger, WithTTL and WithBackoff apply.
func NewRegistrar(cli *clientv3.Client, prefix string, opts ...Option) (*Registrar, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if prefix == "" || prefix == "/" {
		return nil, fmt.Errorf("%w: empty prefix", ErrInvalidArgument)
	}
	o, err := buildOptions(opts, registrarUse)
	if err != nil {
		return nil, err
	}
	r := &Registrar{cli: cli, prefix: normPrefix(prefix), opts: o, log: o.logger, regs: map[string]*registration{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Key returns the etcd key an instance is registered under.
func (r *Registrar) Key(inst Instance) string { return instanceKey(r.prefix, inst.Service, inst.ID) }

// bind returns ctx, also cancelled (with cause ErrClosed) when Close starts.
func (r *Registrar) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(r.ctx, func() { cancel(ErrClosed) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// interrupted wraps err with ErrClosed when Close ended ctx.
func interrupted(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), ErrClosed) && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// Register writes inst under a lease of the Registrar's TTL and returns once it is in
// etcd. From then on a goroutine keeps it there: when the lease is lost (revoked, or
// expired during an outage) it grants a new one and writes the key again; when the key
// is deleted or overwritten without a lease it writes it again; failed attempts are
// retried with jittered backoff and no cap, until Deregister or Close. When another
// Registrar registers the same instance later, that one wins and this one yields (see
// Registrar).
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
	ctx, done := r.bind(ctx)
	defer done()
	if g != nil {
		return interrupted(ctx, g.update(ctx, inst, value, true))
	}

	runCtx, cancel := context.WithCancel(context.Background())
	g = &registration{
		r:      r,
		key:    key,
		ctx:    runCtx,
		cancel: cancel,
		inst:   inst,
		value:  value,
		putSem: make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		log:    r.log.With(zap.String("key", key)),
	}
	keeper, err := lease.New(ctx, r.cli, r.opts.ttl, lease.WithRegrant(g.onRegrant), lease.WithLogger(r.log))
	if err != nil {
		cancel()
		return interrupted(ctx, fmt.Errorf("discovery: register %s: grant lease: %w", key, err))
	}
	g.keeper = keeper
	g.leaseID = keeper.ID()
	rev, err := g.write(ctx, true)
	if err != nil {
		cancel()
		keeper.Close()
		return interrupted(ctx, fmt.Errorf("discovery: register %s: %w", key, err))
	}
	go g.run(runCtx, rev)

	r.mu.Lock()
	r.regs[key] = g
	r.mu.Unlock()
	return nil
}

// Deregister stops keeping inst registered, revokes its lease and deletes its key (only
// if the key is still this Registrar's: another Registrar may have registered the same
// instance since).
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
	ctx, done := r.bind(ctx)
	defer done()
	return interrupted(ctx, g.stop(ctx))
}

// Drain marks inst drained: it stays registered, but balancers and the gRPC resolver
// stop picking it. While another Registrar holds the same instance (see Registrar), only
// this Registrar's copy changes.
func (r *Registrar) Drain(ctx context.Context, inst Instance) error {
	return r.setDrained(ctx, inst, true)
}

// Undrain puts a drained inst back in service.
func (r *Registrar) Undrain(ctx context.Context, inst Instance) error {
	return r.setDrained(ctx, inst, false)
}

func (r *Registrar) setDrained(ctx context.Context, inst Instance, drained bool) error {
	key := r.Key(inst)
	r.regMu.Lock()
	defer r.regMu.Unlock()
	r.mu.Lock()
	g, closed := r.regs[key], r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
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
	ctx, done := r.bind(ctx)
	defer done()
	return interrupted(ctx, g.update(ctx, next, value, false))
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

// Close deregisters every instance (revoking leases, which deletes their keys) and stops
// every goroutine. It first interrupts a Register, Drain, Undrain or Deregister in
// progress (which then fails with ErrClosed). It is bounded even when etcd is
// unreachable: the registrations are closed in parallel, each waiting for its lease's
// revoke and, when that failed, for a delete, three seconds in all
// (lease.Keeper.CloseContext). It is idempotent; later calls return nil.
func (r *Registrar) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.cancel()
		r.regMu.Lock()
		defer r.regMu.Unlock()
		r.mu.Lock()
		r.closed = true
		regs := r.regs
		r.regs = map[string]*registration{}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		errs := make(chan error, len(regs))
		var wg sync.WaitGroup
		for _, g := range regs {
			wg.Go(func() { errs <- g.stop(ctx) })
		}
		wg.Wait()
		close(errs)
		var all []error
		for e := range errs {
			all = append(all, e)
		}
		err = errors.Join(all...)
	})
	return err
}

// registration keeps one key in place.
type registration struct {
	r      *Registrar
	key    string
	keeper *lease.Keeper   // replaced only by run
	ctx    context.Context // ends when the registration stops; bounds run and the re-grant hook
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: write the value again
	done   chan struct{} // closed when run returns
	log    *zap.Logger

	// putSem (one slot) orders writes, so the last one carries the newest lease and
	// value; waiting for it honours the writer's context.
	putSem chan struct{}

	mu       sync.Mutex
	inst     Instance
	value    string
	leaseID  clientv3.LeaseID
	past     []clientv3.LeaseID // the last few leases before leaseID
	yielding clientv3.LeaseID   // the other registration's lease this one yields to, or 0
	stopped  bool
}

func (g *registration) current() (string, clientv3.LeaseID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.value, g.leaseID
}

// setLease makes id the current lease and remembers the previous one, so that the key
// still carrying it is known as ours.
func (g *registration) setLease(id clientv3.LeaseID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leaseID != 0 && g.leaseID != id {
		g.past = append(g.past, g.leaseID)
		if len(g.past) > 4 {
			g.past = g.past[1:]
		}
	}
	g.leaseID = id
}

// foreign reports whether a key carrying lease belongs to another registration.
func (g *registration) foreign(lease int64) bool {
	id := clientv3.LeaseID(lease)
	if id == 0 {
		return false // written by hand, not a registration
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return id != g.leaseID && !slices.Contains(g.past, id)
}

// yield records that another registration holds the key (0: this one does again).
func (g *registration) yield(to clientv3.LeaseID) {
	g.mu.Lock()
	changed := g.yielding != to
	g.yielding = to
	g.mu.Unlock()
	if changed && to != 0 {
		g.log.Info("another registration of this instance holds the key; yielding until it is gone",
			zap.Int64("lease", int64(to)))
	}
}

// write puts the value under the current lease and returns the revision of the write.
// Unless forced, it writes only over this registration's own key, an absent key, or a
// value without a lease; it yields to another registration's (returning 0 and no
// error).
func (g *registration) write(ctx context.Context, force bool) (int64, error) {
	if err := g.lockPut(ctx); err != nil {
		return 0, err
	}
	defer g.unlockPut()
	g.mu.Lock()
	value, id, stopped := g.value, g.leaseID, g.stopped
	g.mu.Unlock()
	if stopped {
		return 0, ErrClosed
	}
	kv := g.r.cli.KV
	put := clientv3.OpPut(g.key, value, clientv3.WithLease(id))
	if force {
		resp, err := kv.Do(ctx, put)
		if err != nil {
			return 0, err
		}
		g.yield(0)
		return resp.Put().Header.Revision, nil
	}
	resp, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(g.key), "=", id)).
		Then(put).Else(clientv3.OpGet(g.key)).Commit()
	if err != nil {
		return 0, err
	}
	if resp.Succeeded {
		g.yield(0)
		return resp.Header.Revision, nil
	}
	var seen int64 // mod revision of what is there; 0 when absent
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if g.foreign(kvs[0].Lease) {
			g.yield(clientv3.LeaseID(kvs[0].Lease))
			return 0, nil
		}
		seen = kvs[0].ModRevision
	}
	resp, err = kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(g.key), "=", seen)).Then(put).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		// Written in between: look again (run does, on the kick, with backoff).
		g.wake()
		return 0, nil
	}
	g.yield(0)
	return resp.Header.Revision, nil
}

func (g *registration) lockPut(ctx context.Context) error {
	select {
	case g.putSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *registration) unlockPut() { <-g.putSem }

// onRegrant runs on the Keeper's goroutine after it granted a new lease for a lost one.
// Its write is bounded by the TTL and ends when the registration stops, so that a
// request etcd never answers cannot hold the Keeper (and Close behind it).
func (g *registration) onRegrant(ctx context.Context, id clientv3.LeaseID) error {
	g.setLease(id)
	ctx, cancel := context.WithTimeout(ctx, g.r.opts.ttl)
	defer cancel()
	defer context.AfterFunc(g.ctx, cancel)()
	rev, err := g.write(ctx, false)
	if err == nil && rev != 0 {
		g.log.Info("re-registered on a new lease", zap.Int64("lease", int64(id)))
	}
	return err
}

func (g *registration) update(ctx context.Context, inst Instance, value string, force bool) error {
	g.mu.Lock()
	g.inst, g.value = inst, value
	g.mu.Unlock()
	_, err := g.write(ctx, force)
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

// stop ends the run loop, revokes the lease and deletes the key if it is still ours.
func (g *registration) stop(ctx context.Context) error {
	g.cancel()
	<-g.done
	g.mu.Lock()
	g.stopped = true // from now on write refuses
	id := g.leaseID
	g.mu.Unlock()
	kerr := g.keeper.CloseContext(ctx)
	if kerr == nil || errors.Is(kerr, lease.ErrClosed) || errors.Is(kerr, lease.ErrLost) {
		// Revoked (or already gone): the key went with the lease if it carried it, and
		// another registration's key is not ours to delete.
		return nil
	}
	// Wait out a write that passed the check before stopped was set.
	if err := g.lockPut(ctx); err != nil {
		return fmt.Errorf("discovery: deregister %s: %w", g.key, errors.Join(kerr, err))
	}
	defer g.unlockPut()
	// The revoke failed: delete the key, if it is still ours.
	_, err := g.r.cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(g.key), "=", id)).
		Then(clientv3.OpDelete(g.key)).Commit()
	if err != nil {
		return fmt.Errorf("discovery: deregister %s: %w", g.key, errors.Join(kerr, err))
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
	// Every write backs off, successful or not: a key that keeps being overwritten is
	// not rewritten in a tight loop. The delay resets once the key is seen in place.
	var nextWrite time.Time
	// ensure writes the key (unless another registration holds it); when it may not
	// write yet or the write failed, it arms the retry timer.
	ensure := func() {
		if ctx.Err() != nil || g.r.cli.Ctx().Err() != nil {
			// Stopping, or the client was closed: nothing can be written any more, and a
			// write racing the client's shutdown must not resurrect the key.
			return
		}
		if wait := time.Until(nextWrite); wait > 0 {
			retry.Reset(wait)
			return
		}
		pctx, cancel := context.WithTimeout(ctx, g.r.opts.ttl)
		_, err := g.write(pctx, false)
		cancel()
		nextWrite = time.Now().Add(bo.Next())
		if err == nil {
			leaseMissingSince = time.Time{}
			return
		}
		if ctx.Err() != nil {
			return
		}
		g.log.Debug("registration write failed", zap.Error(err))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The Keeper re-grants when it notices the loss, with a backoff that may have
			// grown during an outage. etcd has just answered, so when the Keeper already
			// knows the lease is lost, or has not noticed after a TTL, replace it now.
			lost := false
			select {
			case <-g.keeper.Lost():
				lost = true
			default:
			}
			if leaseMissingSince.IsZero() && !lost {
				leaseMissingSince = time.Now()
			} else if lost || time.Since(leaseMissingSince) > g.r.opts.ttl {
				if !g.replaceKeeper(ctx, bo) {
					keeperDead = true
					return
				}
				leaseMissingSince = time.Time{}
				nextWrite = time.Now() // a new lease: write at once
			}
		}
		retry.Reset(time.Until(nextWrite))
	}
	// check compares what etcd holds with what should be there; it reports whether the
	// key is in place.
	check := func(kv *watch.KV) bool {
		if kv != nil && g.foreign(kv.Lease) {
			g.yield(clientv3.LeaseID(kv.Lease))
			return false
		}
		value, id := g.current()
		if kv == nil || string(kv.Value) != value || clientv3.LeaseID(kv.Lease) != id {
			ensure()
			return false
		}
		g.yield(0)
		return true
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
			var kv *watch.KV
			if len(resp.Kvs) > 0 {
				kv = &watch.KV{Key: string(resp.Kvs[0].Key), Value: resp.Kvs[0].Value, Lease: resp.Kvs[0].Lease}
			}
			if check(kv) {
				bo.Reset()
				nextWrite = time.Time{}
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
	_ = old.CloseContext(ctx) // a lost lease: Close of the Registrar need not wait for its revoke
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
			g.setLease(k.ID())
			return true
		}
		g.log.Debug("grant lease", zap.Error(err))
		bo.Wait(ctx)
	}
}
