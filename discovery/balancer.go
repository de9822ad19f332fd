package discovery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
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
	// flight (released by Selection.Done).
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
// An instance reported failed — through Selection.Done with an error, MarkFailed, or an
// active health check (WithHealthCheck) — is skipped until the cool-down (WithCooldown)
// has passed. Drained instances are never picked.
type Balancer struct {
	r        *Resolver
	strategy Strategy
	opts     options
	log      *zap.Logger

	pools sync.Map // service name → *pool

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewBalancer returns a Balancer over r's services. With WithHealthCheck it runs a
// goroutine that Close stops.
func NewBalancer(r *Resolver, strategy Strategy, opts ...Option) (*Balancer, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil resolver", ErrInvalidOption)
	}
	if strategy < RoundRobin || strategy > ConsistentHash {
		return nil, fmt.Errorf("%w: unknown strategy %d", ErrInvalidOption, int(strategy))
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &Balancer{r: r, strategy: strategy, opts: o, log: o.logger, stop: make(chan struct{})}
	if o.check != nil {
		b.wg.Add(1)
		go b.checkLoop()
	}
	return b, nil
}

// Selection is the result of a pick. Call Done when the request ends so that in-flight
// counts stay true; a non-nil error marks the instance failed for the cool-down.
type Selection struct {
	// Instance is the picked instance. Its Metadata is shared: do not modify it.
	Instance Instance
	ep       *endpoint
	b        *Balancer
}

// Done releases the pick. err != nil reports the instance as failed.
func (s Selection) Done(err error) {
	if s.ep == nil {
		return
	}
	s.ep.inflight.Add(-1)
	if err != nil {
		s.ep.fail(s.b.opts.cooldown)
	}
}

// Pick chooses an instance of service. With ConsistentHash it hashes the empty key; use
// PickKey.
func (b *Balancer) Pick(service string) (Selection, error) {
	return b.PickKey(service, "")
}

// PickKey chooses an instance of service; key matters only to ConsistentHash.
func (b *Balancer) PickKey(service, key string) (Selection, error) {
	p := b.pool(service)
	v := p.current()
	if v.snap == nil {
		return Selection{}, fmt.Errorf("%w: picking %q", ErrNotReady, service)
	}
	if len(v.eps) == 0 {
		return Selection{}, fmt.Errorf("%w: service %q", ErrNoInstance, service)
	}
	var ep *endpoint
	switch b.strategy {
	case RoundRobin:
		ep = v.roundRobin(&p.rr)
	case Random:
		ep = v.random()
	case WeightedRoundRobin:
		ep = p.weighted(v)
	case PowerOfTwo:
		ep = v.powerOfTwo()
	case ConsistentHash:
		ep = v.ring.lookup(v.eps, key)
	}
	if ep == nil {
		return Selection{}, fmt.Errorf("%w: service %q: all %d instances cooling down", ErrNoInstance, service, len(v.eps))
	}
	ep.inflight.Add(1)
	return Selection{Instance: ep.inst, ep: ep, b: b}, nil
}

// MarkFailed reports that an instance failed; it is skipped for the cool-down.
func (b *Balancer) MarkFailed(service, id string) {
	p := b.pool(service)
	p.current() // so that byID knows the instance even before the first pick
	p.mu.Lock()
	ep := p.byID[id]
	p.mu.Unlock()
	if ep != nil {
		ep.fail(b.opts.cooldown)
	}
}

// InFlight returns the number of picks of an instance not yet released by Done.
func (b *Balancer) InFlight(service, id string) int64 {
	p := b.pool(service)
	p.current() // so that byID knows the instance even before the first pick
	p.mu.Lock()
	ep := p.byID[id]
	p.mu.Unlock()
	if ep == nil {
		return 0
	}
	return ep.inflight.Load()
}

// Close stops the health checks; it is idempotent.
func (b *Balancer) Close() error {
	b.closeOnce.Do(func() { close(b.stop) })
	b.wg.Wait()
	return nil
}

// endpoint is an instance plus the balancer's state about it, kept across snapshots.
type endpoint struct {
	inst        Instance
	inflight    atomic.Int64
	failedUntil atomic.Int64 // unix nanos; 0 = healthy
	current     int64        // smooth WRR, guarded by pool.wmu
}

func (e *endpoint) fail(cooldown time.Duration) {
	e.failedUntil.Store(time.Now().Add(cooldown).UnixNano())
}

// healthy reads the clock only for instances that have failed at some point.
func (e *endpoint) healthy() bool {
	until := e.failedUntil.Load()
	if until == 0 {
		return true
	}
	if time.Now().UnixNano() >= until {
		e.failedUntil.CompareAndSwap(until, 0)
		return true
	}
	return false
}

// pool is a Balancer's state for one service.
type pool struct {
	src  *service
	view atomic.Pointer[view]
	rr   atomic.Uint64

	mu   sync.Mutex // rebuilds and byID
	byID map[string]*endpoint

	wmu sync.Mutex // smooth WRR state
	b   *Balancer
}

// view is an immutable set of pickable endpoints built from one resolver snapshot.
type view struct {
	snap *snapshot
	eps  []*endpoint // not drained, sorted by ID
	ring *ring       // ConsistentHash only
}

func (b *Balancer) pool(service string) *pool {
	if p, ok := b.pools.Load(service); ok {
		return p.(*pool)
	}
	p, _ := b.pools.LoadOrStore(service, &pool{src: b.r.service(service), byID: map[string]*endpoint{}, b: b})
	return p.(*pool)
}

// current returns the view for the resolver's latest snapshot, rebuilding it after a
// change. The common case is two atomic loads and a compare.
func (p *pool) current() *view {
	snap := p.src.snap.Load()
	if v := p.view.Load(); v != nil && v.snap == snap {
		return v
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	snap = p.src.snap.Load()
	if v := p.view.Load(); v != nil && v.snap == snap {
		return v
	}
	v := &view{snap: snap}
	if snap == nil {
		// The resolver has not listed yet.
		p.view.Store(v)
		return v
	}
	seen := make(map[string]*endpoint, len(snap.instances))
	for _, inst := range snap.instances {
		ep := p.byID[inst.ID]
		if ep == nil {
			ep = &endpoint{}
		}
		ep.inst = inst
		seen[inst.ID] = ep
		if !inst.Drained {
			v.eps = append(v.eps, ep)
		}
	}
	p.byID = seen
	sort.Slice(v.eps, func(i, j int) bool { return v.eps[i].inst.ID < v.eps[j].inst.ID })
	if p.b.strategy == ConsistentHash {
		v.ring = newRing(v.eps, p.b.opts.vnodes)
	}
	p.view.Store(v)
	return v
}

func (v *view) roundRobin(ctr *atomic.Uint64) *endpoint {
	n := uint64(len(v.eps))
	start := ctr.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		ep := v.eps[(start+i)%n]
		if ep.healthy() {
			if i > 0 {
				// Keep the cycle moving past the skipped ones.
				ctr.Add(i)
			}
			return ep
		}
	}
	return nil
}

func (v *view) random() *endpoint {
	n := len(v.eps)
	for range 3 {
		if ep := v.eps[rand.N(n)]; ep.healthy() {
			return ep
		}
	}
	start := rand.N(n)
	for i := range n {
		if ep := v.eps[(start+i)%n]; ep.healthy() {
			return ep
		}
	}
	return nil
}

func (v *view) powerOfTwo() *endpoint {
	n := len(v.eps)
	if n == 1 {
		if v.eps[0].healthy() {
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
	switch ah, bh := a.healthy(), b.healthy(); {
	case ah && bh:
		if b.inflight.Load() < a.inflight.Load() {
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
		if ep.healthy() && (best == nil || ep.inflight.Load() < best.inflight.Load()) {
			best = ep
		}
	}
	return best
}

// weighted is nginx's smooth weighted round-robin over the healthy endpoints.
func (p *pool) weighted(v *view) *endpoint {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	var best *endpoint
	var total int64
	for _, ep := range v.eps {
		if !ep.healthy() {
			continue
		}
		w := int64(ep.inst.weight())
		ep.current += w
		total += w
		if best == nil || ep.current > best.current {
			best = ep
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

func (b *Balancer) checkLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.checkInterval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	for {
		b.checkAll(ctx)
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
	}
}

// checkAll runs the health check on every instance of every service picked so far, in
// parallel, each bounded by the check interval.
func (b *Balancer) checkAll(ctx context.Context) {
	var eps []*endpoint
	b.pools.Range(func(_, v any) bool {
		eps = append(eps, v.(*pool).current().eps...)
		return true
	})
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, b.opts.checkInterval)
			defer cancel()
			if err := b.opts.check.Check(cctx, ep.inst); err != nil && ctx.Err() == nil {
				b.log.Debug("health check failed", zap.String("service", ep.inst.Service),
					zap.String("id", ep.inst.ID), zap.Error(err))
				ep.fail(b.opts.cooldown)
			}
		}()
	}
	wg.Wait()
}
