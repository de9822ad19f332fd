package discovery

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Strategy chooses how a Balancer spreads picks over a service's instances.
type Strategy int

const (
	// RoundRobin cycles through the instances in ID order.
	RoundRobin Strategy = iota + 1
	// Random picks uniformly at random.
	Random
	// WeightedRoundRobin cycles in proportion to Instance.Weight, interleaving instances
	// smoothly (nginx's smooth weighted round-robin) instead of in bursts.
	WeightedRoundRobin
	// PowerOfTwo samples two instances at random and picks the one with fewer requests in
	// flight (released by Selection.Report).
	PowerOfTwo
	// ConsistentHash maps the key given to PickKey onto a ring of virtual nodes, so a key
	// keeps its instance while the set changes little.
	ConsistentHash
)

func (s Strategy) String() string {
	switch s {
	case RoundRobin:
		return "round-robin"
	case Random:
		return "random"
	case WeightedRoundRobin:
		return "weighted-round-robin"
	case PowerOfTwo:
		return "power-of-two"
	case ConsistentHash:
		return "consistent-hash"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// Balancer picks instances of services known to a Resolver. Picks read an immutable
// snapshot of the service's instances and make no etcd call and, for round-robin,
// random and power-of-two, take no lock and allocate nothing.
//
// An instance reported failed — through Selection.Report with an error, MarkFailed, or
// an active health check (WithHealthCheck) — is skipped until the cool-down
// (WithCooldown) has passed, measured on the monotonic clock. Drained instances are never
// picked. State about a service nobody picks from is forgotten (WithIdleTimeout).
type Balancer struct {
	r        *Resolver
	strategy Strategy
	opts     options
	log      *zap.Logger
	now      func() int64 // monotonic nanoseconds

	pools sync.Map     // service name → *pool
	tick  atomic.Int64 // advanced every idle/2; a pool records the tick of its last pick

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// monoBase anchors monoNow: time.Since reads the monotonic clock, so a step of the wall
// clock moves no cool-down deadline.
var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

// NewBalancer returns a Balancer over r's services. It runs one goroutine, which forgets
// idle services and runs the health checks (WithHealthCheck); Close stops it. Of the
// options, WithLogger, WithCooldown, WithHealthCheck, WithIdleTimeout and (for
// ConsistentHash only) WithVirtualNodes apply.
func NewBalancer(r *Resolver, strategy Strategy, opts ...Option) (*Balancer, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil resolver", ErrInvalidArgument)
	}
	if strategy < RoundRobin || strategy > ConsistentHash {
		return nil, fmt.Errorf("%w: unknown strategy %d", ErrInvalidArgument, int(strategy))
	}
	o, err := buildOptions(opts, balancerUse)
	if err != nil {
		return nil, err
	}
	if strategy != ConsistentHash && o.has("WithVirtualNodes") {
		return nil, fmt.Errorf("%w: WithVirtualNodes applies to ConsistentHash only, not %s", ErrInvalidArgument, strategy)
	}
	b := &Balancer{r: r, strategy: strategy, opts: o, log: o.logger, now: monoNow}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(1)
	go b.maintain()
	return b, nil
}

// Selection is the result of a pick. Call Report when the request ends so that in-flight
// counts stay true; a non-nil error marks the instance failed for the cool-down.
type Selection struct {
	// Instance is the picked instance. Its Metadata is shared: do not modify it.
	Instance Instance
	st       *state
	b        *Balancer
}

// Report releases the pick and reports how the request went: err != nil marks the
// instance failed for the cool-down. Call it once per Selection.
func (s Selection) Report(err error) {
	if s.st == nil {
		return
	}
	s.st.inflight.Add(-1)
	if err != nil {
		s.st.fail(s.b.now(), s.b.opts.cooldown)
	}
}

// Pick chooses an instance of service. With ConsistentHash it hashes the empty key; use
// PickKey.
func (b *Balancer) Pick(service string) (Selection, error) {
	return b.PickKey(service, "")
}

// PickKey chooses an instance of service; key matters only to ConsistentHash.
func (b *Balancer) PickKey(service, key string) (Selection, error) {
	p, v, err := b.current(service, true)
	if err != nil {
		return Selection{}, err
	}
	if t := b.tick.Load(); p.lastPick.Load() != t {
		p.lastPick.Store(t)
	}
	if len(v.eps) == 0 {
		return Selection{}, fmt.Errorf("%w: service %q: every instance is drained", ErrNoInstance, service)
	}
	var ep *endpoint
	now := b.now
	switch b.strategy {
	case RoundRobin:
		ep = v.roundRobin(&p.rr, now)
	case Random:
		ep = v.random(now)
	case WeightedRoundRobin:
		ep = p.weighted(v, now)
	case PowerOfTwo:
		ep = v.powerOfTwo(now)
	case ConsistentHash:
		ep = v.ring.lookup(v.eps, key, now)
	}
	if ep == nil {
		return Selection{}, fmt.Errorf("%w: service %q: all %d instances cooling down", ErrNoInstance, service, len(v.eps))
	}
	ep.st.inflight.Add(1)
	return Selection{Instance: ep.inst, st: ep.st, b: b}, nil
}

// MarkFailed reports that an instance failed; it is skipped for the cool-down.
func (b *Balancer) MarkFailed(service, id string) {
	if ep := b.endpoint(service, id, true); ep != nil {
		ep.st.fail(b.now(), b.opts.cooldown)
	}
}

// InFlight returns the number of picks of an instance not yet released by Report.
func (b *Balancer) InFlight(service, id string) int64 {
	if ep := b.endpoint(service, id, false); ep != nil {
		return ep.st.inflight.Load()
	}
	return 0
}

// endpoint returns the balancer's endpoint for an instance, or nil.
func (b *Balancer) endpoint(service, id string, create bool) *endpoint {
	if _, v, err := b.current(service, create); err == nil {
		return v.byID[id]
	}
	return nil
}

// current returns the pool of service and its view of the resolver's latest snapshot.
// The common case is a map load, two atomic loads and a compare. Without create, or
// when the service has no instance, it makes no pool; the error then says why.
func (b *Balancer) current(service string, create bool) (*pool, *view, error) {
	var p *pool
	if x, ok := b.pools.Load(service); ok {
		p = x.(*pool)
		if p.seen.Load() == b.r.gen.Load() {
			if v := p.cur.Load(); len(v.snap.instances) > 0 {
				return p, v, nil
			}
			return nil, nil, fmt.Errorf("%w: service %q", ErrNoInstance, service)
		}
	}
	if p == nil {
		snap := b.r.lookup(service)
		switch {
		case snap == nil:
			return nil, nil, fmt.Errorf("%w: picking %q", ErrNotReady, service)
		case len(snap.instances) == 0 || !create:
			// No pool for a service without instances: caller-supplied names cost nothing.
			return nil, nil, fmt.Errorf("%w: service %q", ErrNoInstance, service)
		}
		p = b.pool(service)
	}
	v := p.refresh()
	if len(v.snap.instances) == 0 {
		return nil, nil, fmt.Errorf("%w: service %q", ErrNoInstance, service)
	}
	return p, v, nil
}

// Close stops the Balancer's goroutine and waits for it; it is idempotent.
func (b *Balancer) Close() error {
	b.cancel()
	b.wg.Wait()
	return nil
}

// endpoint is an instance as one view saw it, and the state the balancer keeps about it
// across views. inst is never modified: a changed instance gets a new endpoint.
type endpoint struct {
	inst Instance
	st   *state
}

// state is what the balancer knows about an instance at one address.
type state struct {
	inflight    atomic.Int64
	failedUntil atomic.Int64 // monotonic nanoseconds (Balancer.now); 0 = healthy
	current     int64        // smooth WRR, guarded by pool.wmu
}

func (s *state) fail(now int64, cooldown time.Duration) {
	until := now + int64(cooldown)
	switch {
	case until < now:
		until = math.MaxInt64 // a cool-down of centuries
	case until == 0:
		until = 1
	}
	s.failedUntil.Store(until)
}

// healthy reads the clock only for instances that have failed at some point.
func (s *state) healthy(now func() int64) bool {
	until := s.failedUntil.Load()
	if until == 0 {
		return true
	}
	if now() >= until {
		s.failedUntil.CompareAndSwap(until, 0)
		return true
	}
	return false
}

// pool is a Balancer's state for one service.
type pool struct {
	b        *Balancer
	name     string
	cur      atomic.Pointer[view]
	seen     atomic.Uint64 // the resolver generation cur is known to be current for
	rr       atomic.Uint64
	lastPick atomic.Int64 // Balancer.tick at the last pick

	mu  sync.Mutex // rebuilds
	wmu sync.Mutex // smooth WRR state
}

// view is an immutable set of endpoints built from one resolver snapshot.
type view struct {
	snap *snapshot
	eps  []*endpoint          // not drained, sorted by ID
	byID map[string]*endpoint // drained ones too
	ring *ring                // ConsistentHash only
}

func (b *Balancer) pool(service string) *pool {
	if p, ok := b.pools.Load(service); ok {
		return p.(*pool)
	}
	np := &pool{b: b, name: service}
	np.lastPick.Store(b.tick.Load())
	p, _ := b.pools.LoadOrStore(service, np)
	return p.(*pool)
}

// refresh brings the pool's view up to the resolver's latest snapshot of its service
// and returns it.
func (p *pool) refresh() *view {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The generation first: the resolver stores a snapshot before it counts it.
	gen := p.b.r.gen.Load()
	snap := p.b.r.lookup(p.name)
	if snap == nil {
		snap = emptySnapshot // not reached: pools are made once the resolver is loaded
	}
	old := p.cur.Load()
	if old != nil && old.snap == snap {
		p.seen.Store(gen)
		return old
	}
	v := &view{snap: snap, byID: make(map[string]*endpoint, len(snap.instances))}
	for _, inst := range snap.instances {
		ep := &endpoint{inst: inst}
		// Keep the state (in-flight count, cool-down) of an instance that stays at the
		// same address; one that moved is a new server.
		if old != nil {
			if prev := old.byID[inst.ID]; prev != nil && prev.inst.Address == inst.Address && prev.inst.Port == inst.Port {
				ep.st = prev.st
			}
		}
		if ep.st == nil {
			ep.st = &state{}
		}
		v.byID[inst.ID] = ep
		if !inst.Drained {
			v.eps = append(v.eps, ep) // snapshots are sorted by ID
		}
	}
	if p.b.strategy == ConsistentHash {
		v.ring = newRing(v.eps, p.b.opts.vnodes)
	}
	p.cur.Store(v)
	p.seen.Store(gen)
	return v
}

// inflight returns the picks of the pool's current instances not yet reported.
func (p *pool) inflight() int64 {
	var n int64
	if v := p.cur.Load(); v != nil {
		for _, ep := range v.byID {
			n += ep.st.inflight.Load()
		}
	}
	return n
}

func (v *view) roundRobin(ctr *atomic.Uint64, now func() int64) *endpoint {
	n := uint64(len(v.eps))
	start := ctr.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		ep := v.eps[(start+i)%n]
		if ep.st.healthy(now) {
			if i > 0 {
				// Keep the cycle moving past the skipped ones.
				ctr.Add(i)
			}
			return ep
		}
	}
	return nil
}

func (v *view) random(now func() int64) *endpoint {
	n := len(v.eps)
	for range 3 {
		if ep := v.eps[rand.N(n)]; ep.st.healthy(now) {
			return ep
		}
	}
	start := rand.N(n)
	for i := range n {
		if ep := v.eps[(start+i)%n]; ep.st.healthy(now) {
			return ep
		}
	}
	return nil
}

func (v *view) powerOfTwo(now func() int64) *endpoint {
	n := len(v.eps)
	if n == 1 {
		if v.eps[0].st.healthy(now) {
			return v.eps[0]
		}
		return nil
	}
	i := rand.N(n)
	j := rand.N(n - 1)
	if j >= i {
		j++
	}
	a, b := v.eps[i], v.eps[j]
	switch ah, bh := a.st.healthy(now), b.st.healthy(now); {
	case ah && bh:
		if b.st.inflight.Load() < a.st.inflight.Load() {
			return b
		}
		return a
	case ah:
		return a
	case bh:
		return b
	}
	// Both sampled are cooling down: take the least loaded healthy one.
	var best *endpoint
	for _, ep := range v.eps {
		if ep.st.healthy(now) && (best == nil || ep.st.inflight.Load() < best.st.inflight.Load()) {
			best = ep
		}
	}
	return best
}

// weighted is nginx's smooth weighted round-robin over the healthy endpoints. Weights
// are at most MaxWeight, so the sums cannot overflow.
func (p *pool) weighted(v *view, now func() int64) *endpoint {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	var best *endpoint
	var total int64
	for _, ep := range v.eps {
		if !ep.st.healthy(now) {
			continue
		}
		w := int64(ep.inst.weight())
		ep.st.current += w
		total += w
		if best == nil || ep.st.current > best.st.current {
			best = ep
		}
	}
	if best != nil {
		best.st.current -= total
	}
	return best
}

// maintain forgets idle pools every idle/2 and runs the health checks.
func (b *Balancer) maintain() {
	defer b.wg.Done()
	sweep := time.NewTicker(b.opts.idle / 2)
	defer sweep.Stop()
	var checks <-chan time.Time
	if b.opts.check != nil {
		t := time.NewTicker(b.opts.checkInterval)
		defer t.Stop()
		checks = t.C
	}
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-sweep.C:
			b.forgetIdle()
		case <-checks:
			b.checkAll(b.ctx)
		}
	}
}

// forgetIdle drops the pools not picked from during the last two ticks (so for at least
// idle) and with nothing in flight.
func (b *Balancer) forgetIdle() {
	t := b.tick.Add(1)
	b.pools.Range(func(k, v any) bool {
		p := v.(*pool)
		if p.lastPick.Load() <= t-3 && p.inflight() == 0 {
			b.pools.Delete(k)
		}
		return true
	})
}

// checkAll runs the health check on every instance of every pool not forgotten, in
// parallel, each bounded by the check interval.
func (b *Balancer) checkAll(ctx context.Context) {
	var eps []*endpoint
	b.pools.Range(func(k, v any) bool {
		eps = append(eps, v.(*pool).refresh().eps...)
		return true
	})
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, b.opts.checkInterval)
			defer cancel()
			if err := b.opts.check.Check(cctx, ep.inst); err != nil && ctx.Err() == nil {
				b.log.Debug("health check failed", zap.String("service", ep.inst.Service),
					zap.String("id", ep.inst.ID), zap.Error(err))
				ep.st.fail(b.now(), b.opts.cooldown)
			}
		})
	}
	wg.Wait()
}
