package breaker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
)

// State is a circuit breaker's state.
type State int

const (
	// Closed lets calls through and counts their failures.
	Closed State = iota
	// Open rejects calls with ErrOpen until the cool-down ends.
	Open
	// HalfOpen lets one probe call through, in the whole fleet; its outcome closes the
	// breaker or opens it for another cool-down.
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// etcdTimeout bounds the etcd calls Do makes on its own behalf (trip, probe claim and
// outcome), so that an unreachable etcd costs a call at most this much before the
// instance falls back to its local state.
const etcdTimeout = 2 * time.Second

// Breaker is one instance's handle on a circuit breaker shared through etcd. It is safe
// for concurrent use.
type Breaker struct {
	cli    *clientv3.Client
	prefix string
	o      options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu sync.Mutex
	// The shared view, from the watch and from this instance's own transactions: which
	// keys exist, and the revision each key's state is known at. An event or a read
	// older than what a key is known at is ignored, so a watch that lags behind our own
	// write never takes the view back in time.
	open, cooling, probing bool
	keyRev                 map[string]int64
	coolSeen               time.Time // when the cool-down key was seen
	coolMod                int64     // the cool-down key's mod revision then
	// local is true while etcd cannot be used; the local* fields then decide.
	local        bool
	localState   State
	localUntil   time.Time
	localProbing bool
	failures     int // consecutive failures seen here while closed
	closed       bool
}

// New returns a Breaker on the keys under prefix and starts watching them; it does not
// block. Every instance of the protected service uses the same prefix and options.
func New(cli *clientv3.Client, prefix string, opts ...Option) (*Breaker, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if prefix == "" {
		return nil, fmt.Errorf("%w: empty prefix", ErrInvalidArgument)
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Breaker{cli: cli, prefix: prefix, o: o, ctx: ctx, cancel: cancel, local: true, keyRev: map[string]int64{}}
	b.wg.Go(b.watch)
	return b, nil
}

func (b *Breaker) openKey() string     { return b.prefix + "open" }
func (b *Breaker) cooldownKey() string { return b.prefix + "cooldown" }
func (b *Breaker) probeKey() string    { return b.prefix + "probe" }

func secs(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// State returns the breaker's state as this instance sees it.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked(time.Now())
}

func (b *Breaker) stateLocked(now time.Time) State {
	if b.local {
		if b.localState == Open && !now.Before(b.localUntil) {
			return HalfOpen
		}
		return b.localState
	}
	switch {
	case !b.open:
		return Closed
	// A cool-down key that outlives its TTL by far means our view is stale (etcd cut
	// off without the watch noticing): treat it as over, and let the probe find out.
	case b.cooling && now.Before(b.coolSeen.Add(staleAfter(b.o))):
		return Open
	}
	return HalfOpen
}

// staleAfter is how long after it appeared a cool-down key must have expired, whatever
// etcd's minimum TTL or leader changes: twice the cool-down, the probe timeout, and 5s.
func staleAfter(o options) time.Duration { return 2*o.cooldown + o.probeTimeout + 5*time.Second }

// goLocal switches to the local state after etcd could not be used.
func (b *Breaker) goLocalLocked(st State, now time.Time) {
	if !b.local {
		b.local = true
		b.localProbing = false
	}
	b.localState = st
	if st == Open {
		b.localUntil = now.Add(b.o.cooldown)
	}
}

// Do calls fn if the breaker lets it through and records the outcome. It returns ErrOpen
// without calling fn while the breaker is open, or half-open with the probe taken.
// Otherwise it returns fn's error. The half-open probe's context ends after
// WithProbeTimeout.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	now := time.Now()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	st, local := b.stateLocked(now), b.local
	switch {
	case st == Open:
		b.mu.Unlock()
		return ErrOpen
	case st == Closed:
		b.mu.Unlock()
		err := fn(ctx)
		b.record(err)
		return err
	case local && b.localProbing, !local && b.probing:
		b.mu.Unlock()
		return ErrOpen
	}
	if local {
		b.localProbing = true // hold the local probe while we ask etcd
	}
	b.mu.Unlock()
	return b.probe(ctx, fn, local)
}

// record counts a closed-state outcome and trips the breaker at the threshold.
func (b *Breaker) record(err error) {
	b.mu.Lock()
	if !b.o.isFailure(err) {
		b.failures = 0
		b.mu.Unlock()
		return
	}
	if b.stateLocked(time.Now()) != Closed {
		// A call let through while closed that failed after the breaker opened: the
		// breaker is open already, and the failure belongs to no count.
		b.mu.Unlock()
		return
	}
	b.failures++
	if b.failures < b.o.threshold {
		b.mu.Unlock()
		return
	}
	b.failures = 0
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, etcdTimeout)
	defer cancel()
	if err := b.trip(ctx, false); err != nil {
		b.o.logger.Warn("breaker: trip could not reach etcd; open here only", zap.String("prefix", b.prefix), zap.Error(err))
		b.mu.Lock()
		b.goLocalLocked(Open, time.Now())
		b.mu.Unlock()
	}
}

// trip opens the breaker for everyone: the open key, and a cool-down key on a lease of
// the cool-down. Unless force, it leaves an already open breaker alone.
func (b *Breaker) trip(ctx context.Context, force bool) error {
	l, err := b.cli.Grant(ctx, secs(b.o.cooldown))
	if err != nil {
		return err
	}
	txn := b.cli.Txn(ctx)
	if !force {
		txn = txn.If(clientv3.Compare(clientv3.CreateRevision(b.openKey()), "=", 0))
	}
	// The probe claim goes too: the outcome of a probe running meanwhile compares it, so
	// it neither closes the breaker nor starts a cool-down over this one.
	resp, err := txn.Then(
		clientv3.OpPut(b.openKey(), ""),
		clientv3.OpPut(b.cooldownKey(), "", clientv3.WithLease(l.ID)),
		clientv3.OpDelete(b.probeKey()),
	).Else(b.readOp()).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		b.revoke(l.ID)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.local = false
	if !resp.Succeeded {
		// Someone else tripped it first: our view was stale. Take etcd's state (open,
		// cooling down or half-open) rather than assume a cool-down of our own.
		b.applyReadLocked(resp)
		return nil
	}
	rev := resp.Header.Revision
	b.applyKeyLocked(b.openKey(), true, rev, rev)
	b.applyKeyLocked(b.cooldownKey(), true, rev, rev)
	b.applyKeyLocked(b.probeKey(), false, rev, rev)
	return nil
}

// readOp reads the breaker's keys, in the Else branch of a transaction whose condition
// failed because this instance's view was stale.
func (b *Breaker) readOp() clientv3.Op {
	return clientv3.OpGet(b.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
}

// applyReadLocked applies the state read by readOp in a failed transaction.
func (b *Breaker) applyReadLocked(resp *clientv3.TxnResponse) {
	if len(resp.Responses) == 1 {
		b.applyListLocked(resp.Responses[0].GetResponseRange().Kvs, resp.Header.Revision)
	}
}

func (b *Breaker) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), etcdTimeout)
	defer cancel()
	_, _ = b.cli.Revoke(ctx, id)
}

// probe runs fn as the half-open probe, if this instance wins the claim for it.
func (b *Breaker) probe(ctx context.Context, fn func(context.Context) error, local bool) error {
	cctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	sent := time.Now()
	rev, lease, err := b.claim(cctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			b.mu.Lock()
			b.localProbing = false
			b.mu.Unlock()
			return ctx.Err()
		}
		// etcd cannot be reached: probe for this instance alone.
		b.o.logger.Warn("breaker: probe claim could not reach etcd; probing here only", zap.String("prefix", b.prefix), zap.Error(err))
		b.mu.Lock()
		if !local {
			if b.local && b.localProbing {
				b.mu.Unlock()
				return ErrOpen
			}
			b.goLocalLocked(HalfOpen, time.Now())
			b.localProbing = true
		}
		b.mu.Unlock()
		return b.localProbe(ctx, fn)
	}
	b.mu.Lock()
	b.local, b.localProbing = false, false
	if rev == 0 {
		b.mu.Unlock()
		return ErrOpen // another instance probes, or the state moved on
	}
	b.applyKeyLocked(b.probeKey(), true, rev, rev)
	b.mu.Unlock()
	defer b.revoke(lease)

	pctx, pcancel := context.WithDeadline(ctx, sent.Add(b.o.probeTimeout))
	err = fn(pctx)
	pcancel()
	octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), etcdTimeout)
	defer ocancel()
	if b.o.isFailure(err) {
		if terr := b.reopen(octx, rev); terr != nil {
			b.o.logger.Warn("breaker: could not record the failed probe", zap.Error(terr))
		}
		return err
	}
	resp, cerr := b.cli.Txn(octx).If(
		clientv3.Compare(clientv3.CreateRevision(b.probeKey()), "=", rev),
	).Then(clientv3.OpDelete(b.openKey()), clientv3.OpDelete(b.probeKey())).Else(b.readOp()).Commit()
	if cerr != nil {
		b.o.logger.Warn("breaker: could not record the successful probe", zap.Error(cerr))
		return err
	}
	b.mu.Lock()
	if resp.Succeeded {
		b.applyKeyLocked(b.openKey(), false, resp.Header.Revision, resp.Header.Revision)
		b.applyKeyLocked(b.probeKey(), false, resp.Header.Revision, resp.Header.Revision)
		b.failures = 0
	} else {
		b.applyReadLocked(resp) // the claim expired, or Reset or Trip came first
	}
	b.mu.Unlock()
	return err
}

// claim takes the probe claim on a lease of the probe timeout. It returns the claim's
// revision, or 0 if the breaker is not half-open or another instance holds the claim.
func (b *Breaker) claim(ctx context.Context) (int64, clientv3.LeaseID, error) {
	l, err := b.cli.Grant(ctx, secs(b.o.probeTimeout))
	if err != nil {
		return 0, 0, err
	}
	resp, err := b.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(b.openKey()), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(b.cooldownKey()), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(b.probeKey()), "=", 0),
	).Then(clientv3.OpPut(b.probeKey(), "", clientv3.WithLease(l.ID))).Else(b.readOp()).Commit()
	if err != nil || !resp.Succeeded {
		b.revoke(l.ID)
		if err == nil {
			// Not half-open, or the probe taken: our view was stale; take etcd's.
			b.mu.Lock()
			b.applyReadLocked(resp)
			b.mu.Unlock()
		}
		return 0, 0, err
	}
	return resp.Header.Revision, l.ID, nil
}

// reopen starts another cool-down after a failed probe.
func (b *Breaker) reopen(ctx context.Context, rev int64) error {
	l, err := b.cli.Grant(ctx, secs(b.o.cooldown))
	if err != nil {
		return err
	}
	resp, err := b.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(b.probeKey()), "=", rev),
	).Then(
		clientv3.OpPut(b.cooldownKey(), "", clientv3.WithLease(l.ID)),
		clientv3.OpDelete(b.probeKey()),
	).Else(b.readOp()).Commit()
	if err != nil || !resp.Succeeded {
		b.revoke(l.ID)
		if err == nil {
			b.mu.Lock()
			b.applyReadLocked(resp) // the claim expired, or Reset or Trip came first
			b.mu.Unlock()
		}
		return err
	}
	b.mu.Lock()
	b.applyKeyLocked(b.cooldownKey(), true, resp.Header.Revision, resp.Header.Revision)
	b.applyKeyLocked(b.probeKey(), false, resp.Header.Revision, resp.Header.Revision)
	b.mu.Unlock()
	return nil
}

// localProbe runs fn as this instance's own probe while etcd cannot be reached.
func (b *Breaker) localProbe(ctx context.Context, fn func(context.Context) error) error {
	pctx, cancel := context.WithTimeout(ctx, b.o.probeTimeout)
	err := fn(pctx)
	cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.localProbing = false
	if !b.local {
		return err // the watch came back meanwhile; the shared state decides
	}
	if b.o.isFailure(err) {
		b.goLocalLocked(Open, time.Now())
	} else {
		b.localState, b.failures = Closed, 0
	}
	return err
}

// Trip opens the breaker for every instance, for one cool-down, whatever its state.
func (b *Breaker) Trip(ctx context.Context) error {
	if b.isClosed() {
		return ErrClosed
	}
	return b.trip(ctx, true)
}

// Reset closes the breaker for every instance, whatever its state.
func (b *Breaker) Reset(ctx context.Context) error {
	if b.isClosed() {
		return ErrClosed
	}
	resp, err := b.cli.Txn(ctx).Then(
		clientv3.OpDelete(b.openKey()),
		clientv3.OpDelete(b.cooldownKey()),
		clientv3.OpDelete(b.probeKey()),
	).Commit()
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.applyListLocked(nil, resp.Header.Revision)
	b.failures = 0
	b.local = false
	b.mu.Unlock()
	return nil
}

func (b *Breaker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// watch keeps the shared view: list the keys, then follow them; after an error, fall
// back to the local state and list again with backoff.
func (b *Breaker) watch() {
	bo := backoff.New(100*time.Millisecond, 5*time.Second)
	for b.ctx.Err() == nil {
		resp, err := b.cli.Get(b.ctx, b.prefix, clientv3.WithPrefix())
		if err != nil {
			b.lostSync()
			bo.Wait(b.ctx)
			continue
		}
		b.mu.Lock()
		b.applyListLocked(resp.Kvs, resp.Header.Revision)
		b.local = false
		b.mu.Unlock()
		bo.Reset()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(b.ctx))
		wch := b.cli.Watch(wctx, b.prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	follow:
		for {
			// Select on ctx too: a watch on a client closed under us never closes.
			select {
			case <-b.ctx.Done():
				break follow
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil {
					break follow
				}
				b.mu.Lock()
				for _, ev := range wr.Events {
					b.applyKeyLocked(string(ev.Kv.Key), ev.Type == clientv3.EventTypePut, ev.Kv.ModRevision, ev.Kv.ModRevision)
				}
				b.mu.Unlock()
			}
		}
		cancel()
		if b.ctx.Err() != nil {
			return
		}
		b.lostSync()
		bo.Wait(b.ctx)
	}
}

// applyListLocked applies a read of the keys under the prefix, made at revision rev.
func (b *Breaker) applyListLocked(kvs []*mvccpb.KeyValue, rev int64) {
	for _, k := range []string{b.openKey(), b.cooldownKey(), b.probeKey()} {
		present, mod := false, int64(0)
		for _, kv := range kvs {
			if string(kv.Key) == k {
				present, mod = true, kv.ModRevision
			}
		}
		b.applyKeyLocked(k, present, rev, mod)
	}
}

// applyKeyLocked records that key exists (or not) as of revision rev, unless the view
// already knows the key at a later revision. mod is the key's mod revision when it
// exists: a cool-down key written anew starts a new cool-down.
func (b *Breaker) applyKeyLocked(key string, present bool, rev, mod int64) {
	if rev < b.keyRev[key] {
		return
	}
	b.keyRev[key] = rev
	switch key {
	case b.openKey():
		b.open = present
		if !present {
			b.failures = 0
		}
	case b.cooldownKey():
		if present && mod != b.coolMod {
			b.coolSeen, b.coolMod = time.Now(), mod
		}
		b.cooling = present
	case b.probeKey():
		b.probing = present
	}
}

// lostSync falls back to the local state, starting from the last shared one.
func (b *Breaker) lostSync() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.local {
		return
	}
	now := time.Now()
	switch b.stateLocked(now) {
	case Closed:
		b.goLocalLocked(Closed, now)
	default:
		b.goLocalLocked(Open, now)
	}
}

// Close stops the watch and waits for it; it is idempotent. The shared state stays in
// etcd for the other instances.
func (b *Breaker) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel()
		b.wg.Wait()
	})
	return nil
}
