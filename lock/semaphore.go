package lock

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// Semaphore hands out up to n permits on a key. Each permit is a key bound to the
// lease, so a holder that crashes gives its permit back when its lease expires. Every
// participant must use the same n.
type Semaphore struct {
	holder *ownership.Holder
	dir    string
	n      int
	policy ownership.Policy
	v      *ownership.Vocab

	mu     sync.Mutex
	closed bool
	held   map[*Permit]struct{}
}

// Permit is one held permit of a Semaphore.
type Permit struct {
	sem   *Semaphore
	claim *ownership.Claim
}

// NewSemaphore returns a Semaphore of permits permits on key. It does not block.
func NewSemaphore(cli *clientv3.Client, key string, permits int, opts ...Option) (*Semaphore, error) {
	if err := checkArgs(cli, key); err != nil {
		return nil, err
	}
	if permits < 1 {
		return nil, fmt.Errorf("%w: %d permits, need at least 1", ErrInvalidArgument, permits)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	dir := dirOf(key)
	return &Semaphore{
		holder: ownership.NewHolder(cli, o.ttl, o.session, o.logger),
		dir:    dir, n: permits,
		policy: ownership.Semaphore(dir, permits), v: vocab(key),
		held: map[*Permit]struct{}{},
	}, nil
}

// Permits returns n.
func (s *Semaphore) Permits() int { return s.n }

func (s *Semaphore) acquire(ctx context.Context, wait bool) (*Permit, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.mu.Unlock()
	p := &Permit{sem: s, claim: ownership.NewClaim(s.holder, s.dir, "", s.policy, s.v)}
	if err := p.claim.Acquire(ctx, wait); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		// Close ran while we acquired: it could not see this permit, so give it back.
		s.mu.Unlock()
		p.claim.Abandon()
		return nil, ErrClosed
	}
	s.held[p] = struct{}{}
	s.mu.Unlock()
	return p, nil
}

// Acquire blocks until it holds a permit, ctx ends, or the session is lost.
func (s *Semaphore) Acquire(ctx context.Context) (*Permit, error) { return s.acquire(ctx, true) }

// TryAcquire takes a permit if one is free, else returns a *HeldError (ErrLocked).
func (s *Semaphore) TryAcquire(ctx context.Context) (*Permit, error) { return s.acquire(ctx, false) }

// Close releases every permit still held and, unless WithSession was given, revokes
// the lease. Idempotent.
func (s *Semaphore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	held := s.held
	s.held = map[*Permit]struct{}{}
	s.mu.Unlock()
	// All at once: each waits for etcd (at most a third of the TTL) to delete its key.
	var wg sync.WaitGroup
	for p := range held {
		wg.Go(p.claim.Abandon)
	}
	wg.Wait()
	return s.holder.Close()
}

// Release gives the permit back (ErrNotHeld if it was already released or lost).
func (p *Permit) Release(ctx context.Context) error {
	err := p.claim.Release(ctx)
	p.sem.mu.Lock()
	if err == nil || !p.claim.Held() {
		delete(p.sem.held, p)
	}
	p.sem.mu.Unlock()
	return err
}

// Key returns the permit's key.
func (p *Permit) Key() string { return p.claim.Key() }

// Token returns the permit key's create revision (0 once released or lost).
func (p *Permit) Token() int64 { return p.claim.Token() }

// OwnerCmp returns a comparison that holds only while the permit is held.
func (p *Permit) OwnerCmp() clientv3.Cmp { return p.claim.Cmp() }

// Do applies ops only while the permit is held, else returns ErrNotHeld.
func (p *Permit) Do(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	return p.claim.Do(ctx, ops...)
}

// Done returns a channel closed when the permit is released or lost.
func (p *Permit) Done() <-chan struct{} { return p.claim.Done() }

// Err returns why the permit was lost, or nil.
func (p *Permit) Err() error { return p.claim.Err() }
