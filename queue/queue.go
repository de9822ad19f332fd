package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Queue is a first-in, first-out work queue with at-least-once delivery. It is safe for
// concurrent use; every process that enqueues or consumes makes its own.
type Queue struct{ c *core }

// New returns a Queue on the keys under prefix. It does not block. Producers and
// consumers of one queue use the same prefix, which belongs to the queue alone.
func New(cli *clientv3.Client, prefix string, opts ...Option) (*Queue, error) {
	c, err := newCore(cli, prefix, opts)
	if err != nil {
		return nil, err
	}
	return &Queue{c: c}, nil
}

// Enqueue adds value at the tail of the queue and returns the item's ID. With WithID the
// call is idempotent: see WithID.
func (q *Queue) Enqueue(ctx context.Context, value []byte, opts ...EnqueueOption) (string, error) {
	return q.c.enqueue(ctx, 0, value, opts)
}

// Dequeue claims the oldest item nobody holds and returns it; it waits (on a watch) until
// there is one or ctx ends. The claim lasts for the visibility timeout unless extended;
// the caller then calls Ack once the item is processed, or Nack to give it back.
func (q *Queue) Dequeue(ctx context.Context) (*Item, error) { return q.c.dequeue(ctx) }

// Len returns the number of items in the queue, claimed or not: those not yet
// acknowledged, not counting dead letters.
func (q *Queue) Len(ctx context.Context) (int, error) { return q.c.len(ctx) }

// DeadLetters returns the items moved aside after WithMaxDeliveries deliveries, oldest
// first. They stay until the caller deletes them (DeleteDeadLetter).
func (q *Queue) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	return q.c.deadLetters(ctx)
}

// DeleteDeadLetter removes one dead letter.
func (q *Queue) DeleteDeadLetter(ctx context.Context, d DeadLetter) error {
	return q.c.deleteDeadLetter(ctx, d)
}

// Close releases the claims this Queue holds that were neither acknowledged nor given
// back, so their items are delivered again at once rather than after the visibility
// timeout. It waits at most two seconds for etcd and is idempotent. Calls after it return
// ErrClosed; an Item already handed out can still be acknowledged while its claim lives
// (Close gives up only the claims of items not yet acknowledged). The client stays the
// caller's.
func (q *Queue) Close() error { return q.c.close() }

// DeadLetter is an item that was delivered WithMaxDeliveries times without being
// acknowledged.
type DeadLetter struct {
	ID         string
	Value      []byte
	Priority   int
	Deliveries int
	key        string
}

// core is the queue shared by Queue (one priority) and PriorityQueue.
type core struct {
	cli    *clientv3.Client
	prefix string
	o      options

	mu     sync.Mutex
	closed bool
	seqVer int64 // the last seen version of the sequence key
	// dedupMu guards the dedup lease apart from mu, so that a slow grant holds up
	// neither Close nor other calls.
	dedupMu sync.Mutex
	dedup   clientv3.LeaseID
	dedupAt time.Time
	held    map[*Item]struct{}
	pool    []claimLease // leases free for the next claims
	// orderCmps is how many claims of older items a claim compares: maxOrderCmps, less
	// if etcd refused that many.
	orderCmps atomic.Int64
	// ackedCap is how many acknowledged claim keys a claim deletes: maxAcked, less if
	// etcd refused that many operations.
	ackedCap atomic.Int64
	// acked are the claim keys of items this Queue acknowledged, left in place by Ack
	// and deleted by the next claim transaction (or with their lease): see Item.Ack.
	acked    []string
	closeErr error
	once     sync.Once
}

func newCore(cli *clientv3.Client, prefix string, opts []Option) (*core, error) {
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
	c := &core{cli: cli, prefix: prefix, o: o, held: map[*Item]struct{}{}}
	c.orderCmps.Store(maxOrderCmps)
	c.ackedCap.Store(maxAcked)
	return c, nil
}

func (c *core) seqKey() string         { return c.prefix + "seq" }
func (c *core) itemsPrefix() string    { return c.prefix + "items/" }
func (c *core) claimsPrefix() string   { return c.prefix + "claims/" }
func (c *core) deadPrefix() string     { return c.prefix + "dead/" }
func (c *core) idKey(id string) string { return c.prefix + "ids/" + id }
func (c *core) ackKey(claimKey string) string {
	return c.prefix + "acks/" + strings.TrimPrefix(claimKey, c.claimsPrefix())
}
func (c *core) claimKey(s string) string { return c.claimsPrefix() + s }

// suffix is "<priority>/<sequence>", each as 16 hex digits that sort like the numbers.
func suffix(priority int, seq int64) string {
	return fmt.Sprintf("%016x/%016x", uint64(int64(priority))^(1<<63), uint64(seq))
}

func parsePriority(suffix string) int {
	p, _, _ := strings.Cut(suffix, "/")
	u, _ := strconv.ParseUint(p, 16, 64)
	return int(int64(u ^ (1 << 63)))
}

func (c *core) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *core) enqueue(ctx context.Context, priority int, value []byte, opts []EnqueueOption) (string, error) {
	var eo enqueueOptions
	for i, opt := range opts {
		if opt == nil {
			return "", fmt.Errorf("%w: enqueue option %d is nil", ErrInvalidArgument, i)
		}
		opt.applyEnqueue(&eo)
	}
	if eo.hasID && eo.id == "" {
		return "", fmt.Errorf("%w: WithID: empty id", ErrInvalidArgument)
	}
	if c.isClosed() {
		return "", ErrClosed
	}
	id := eo.id
	if !eo.hasID {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	var dedup clientv3.LeaseID
	if eo.hasID {
		var err error
		if dedup, err = c.dedupLease(ctx); err != nil {
			return "", err
		}
	}
	env := encode(envelope{id: id, value: value})
	for {
		c.mu.Lock()
		v := c.seqVer
		c.mu.Unlock()
		key := c.itemsPrefix() + suffix(priority, v+1)
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.Version(c.seqKey()), "=", v)}
		then := []clientv3.Op{clientv3.OpPut(c.seqKey(), ""), clientv3.OpPut(key, env)}
		els := []clientv3.Op{clientv3.OpGet(c.seqKey(), clientv3.WithKeysOnly())}
		if eo.hasID {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.idKey(id)), "=", 0))
			then = append(then, clientv3.OpPut(c.idKey(id), key, clientv3.WithLease(dedup)))
			els = append(els, clientv3.OpGet(c.idKey(id), clientv3.WithKeysOnly()))
		}
		resp, err := c.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				c.dropDedup(dedup)
				if dedup, err = c.dedupLease(ctx); err != nil {
					return "", err
				}
				continue
			}
			return "", err
		}
		c.mu.Lock()
		if resp.Succeeded {
			c.seqVer = max(c.seqVer, v+1)
			c.mu.Unlock()
			return id, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			c.seqVer = max(c.seqVer, kvs[0].Version)
		}
		c.mu.Unlock()
		if eo.hasID && len(resp.Responses[1].GetResponseRange().Kvs) > 0 {
			return id, nil // enqueued before, within the window
		}
	}
}

// dedupLease returns a lease of the dedup window, granted at most half a window ago.
func (c *core) dedupLease(ctx context.Context) (clientv3.LeaseID, error) {
	c.dedupMu.Lock()
	defer c.dedupMu.Unlock()
	if c.dedup != 0 && time.Since(c.dedupAt) < c.o.dedupWindow/2 {
		return c.dedup, nil
	}
	resp, err := c.cli.Grant(ctx, ttlSeconds(c.o.dedupWindow))
	if err != nil {
		return 0, err
	}
	c.dedup, c.dedupAt = resp.ID, time.Now()
	return c.dedup, nil
}

// dropDedup forgets a dedup lease that etcd no longer has (revoked from outside).
func (c *core) dropDedup(id clientv3.LeaseID) {
	c.dedupMu.Lock()
	if c.dedup == id {
		c.dedup = 0
	}
	c.dedupMu.Unlock()
}

func ttlSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// claimLease is a lease for claims, and the earliest instant etcd could expire it.
type claimLease struct {
	id       clientv3.LeaseID
	sent     time.Time
	deadline time.Time
}

// maxPooled bounds the leases a Queue keeps for its next claims.
const maxPooled = 8

// fresh reports whether a claim made now on l would still get almost the whole
// visibility timeout: a lease is reused for claims only in the first eighth of its TTL.
func (c *core) fresh(l claimLease) bool { return time.Since(l.sent) <= c.o.visibility/8 }

// lease returns a lease for a claim: a fresh one from the pool (leases of acknowledged
// items, which hold no key any more) or a new grant.
func (c *core) lease(ctx context.Context) (claimLease, error) {
	for {
		c.mu.Lock()
		if len(c.pool) == 0 {
			c.mu.Unlock()
			break
		}
		l := c.pool[len(c.pool)-1]
		c.pool = c.pool[:len(c.pool)-1]
		c.mu.Unlock()
		if c.fresh(l) {
			return l, nil
		}
		l, err := c.refresh(ctx, l)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return claimLease{}, err
		}
	}
	sent := time.Now()
	resp, err := c.cli.Grant(ctx, ttlSeconds(c.o.visibility))
	if err != nil {
		return claimLease{}, err
	}
	return claimLease{id: resp.ID, sent: sent, deadline: sent.Add(time.Duration(resp.TTL) * time.Second)}, nil
}

// refresh renews a lease for another TTL from now: one round trip, where giving it back
// and granting another would take two.
func (c *core) refresh(ctx context.Context, l claimLease) (claimLease, error) {
	sent := time.Now()
	resp, err := c.cli.KeepAliveOnce(ctx, l.id)
	if err != nil {
		return claimLease{}, err
	}
	return claimLease{id: l.id, sent: sent, deadline: sent.Add(time.Duration(resp.TTL) * time.Second)}, nil
}

// recycle puts a lease that holds no live claim back in the pool (it is renewed when
// taken, if no longer fresh), leaves one that may have expired to expire, or revokes it.
func (c *core) recycle(ctx context.Context, l claimLease) {
	c.mu.Lock()
	if !c.closed && len(c.pool) < maxPooled {
		if time.Now().Before(l.deadline) {
			c.pool = append(c.pool, l)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.revoke(ctx, l.id)
}

// revoke gives a lease back on a best-effort basis: if it fails, the lease expires.
func (c *core) revoke(ctx context.Context, id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := c.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		c.o.logger.Debug("queue: revoke", zap.Int64("lease", int64(id)), zap.Error(err))
	}
}

// maxOrderCmps bounds the claims of older items a claim compares (see dequeue); etcd
// refuses a transaction of more than --max-txn-ops (default 128) comparisons.
const maxOrderCmps = 100

// listOps read the head of the queue: its first limit items, and every claim.
func (c *core) listOps(limit int64) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpGet(c.itemsPrefix(), clientv3.WithPrefix(), clientv3.WithLimit(limit)),
		clientv3.OpGet(c.claimsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	}
}

// dequeue claims the oldest visible item. The claim is a transaction that holds only if,
// at its revision, every item older than the one claimed (in key order: a lower priority
// number, or the same priority and enqueued earlier) is still claimed by the claim seen
// in the read the choice was made from, and no older item was added since. Otherwise it
// fails, its Else branch reads the head again, and the choice is made afresh: a consumer
// never claims an item while an older one is visible and unclaimed.
func (c *core) dequeue(ctx context.Context) (*Item, error) {
	var l claimLease
	defer func() {
		if l.id != 0 {
			c.recycle(ctx, l)
		}
	}()
	limit := int64(64)
	var head *clientv3.TxnResponse // the last read of the head; nil: read it
	for {
		if c.isClosed() {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if head == nil {
			resp, err := c.cli.Txn(ctx).Then(c.listOps(limit)...).Commit()
			if err != nil {
				return nil, err
			}
			head = resp
		}
		rev := head.Header.Revision
		items := head.Responses[0].GetResponseRange()
		claims := c.claims(head.Responses[1].GetResponseRange().Kvs)
		// The oldest item without a claim, and the claims of the items before it.
		var kv *mvccpb.KeyValue
		var older []clientv3.Cmp
		for _, ikv := range items.Kvs {
			s := strings.TrimPrefix(string(ikv.Key), c.itemsPrefix())
			if _, ok := claims[s]; ok {
				// Still claimed at the claim's revision, by this claim or a later one.
				older = append(older, clientv3.Compare(clientv3.CreateRevision(c.claimKey(s)), ">", 0))
				continue
			}
			kv = ikv
			break
		}
		if kv == nil {
			if items.More && int64(len(items.Kvs)) == limit {
				limit *= 2 // all of the first ones are claimed
			} else if err := c.wait(ctx, rev+1); err != nil {
				return nil, err
			}
			head = nil
			continue
		}
		s := strings.TrimPrefix(string(kv.Key), c.itemsPrefix())
		env, err := decode(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("queue: item %s: %w", kv.Key, err)
		}
		if c.o.maxDeliveries > 0 && env.deliveries >= c.o.maxDeliveries {
			if err := c.bury(ctx, kv, s); err != nil {
				return nil, err
			}
			head = nil
			continue
		}
		// A lease granted long ago would shorten the claim; renew it.
		if l.id != 0 && !c.fresh(l) {
			if l, err = c.refresh(ctx, l); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return nil, err
			}
		}
		if l.id == 0 {
			if l, err = c.lease(ctx); err != nil {
				return nil, err
			}
		}
		if n := int(c.orderCmps.Load()); len(older) > n {
			older = older[len(older)-n:] // the nearest ones; see maxOrderCmps
		}
		env.deliveries++
		claimKey := c.claimKey(s)
		cmps := append([]clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(claimKey), "=", 0),
			// No older item was added since the read (a lower priority number).
			clientv3.Compare(clientv3.CreateRevision(c.itemsPrefix()), "<", rev+1).WithRange(string(kv.Key)),
		}, older...)
		cleanup := c.takeAcked()
		cr, err := c.cli.Txn(ctx).If(cmps...).Then(append(deletes(cleanup),
			clientv3.OpPut(string(kv.Key), encode(env)),
			clientv3.OpPut(claimKey, "", clientv3.WithLease(l.id)),
		)...).Else(append(deletes(cleanup), c.listOps(limit)...)...).Commit()
		if err != nil {
			// Not applied, or not known to be: the next claim deletes these keys. Their
			// leases may be reused for claims, and renewed, so they would not go alone.
			c.restoreAcked(cleanup)
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			l = claimLease{}
			continue
		}
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			// etcd runs with a --max-txn-ops below ours: compare fewer claims, or delete
			// fewer acknowledged claim keys at once, whichever list is the longer.
			switch {
			case len(cleanup) > 1 && len(cleanup)+2 >= len(older)+3:
				c.ackedCap.Store(int64(len(cleanup) / 2))
				continue
			case len(older) > 1:
				c.orderCmps.Store(int64(len(older) / 2))
				continue
			case len(cleanup) > 1:
				c.ackedCap.Store(int64(len(cleanup) / 2))
				continue
			}
		}
		if err != nil {
			// The claim may have been made: give its lease up rather than reuse it.
			c.revoke(ctx, l.id)
			l = claimLease{}
			return nil, err
		}
		if !cr.Succeeded {
			// Taken by another consumer, or an older item became visible: choose again
			// from the head as it is now.
			n := len(cr.Responses)
			head = &clientv3.TxnResponse{Header: cr.Header, Responses: cr.Responses[n-2:]}
			continue
		}
		it := &Item{
			c: c, id: env.id, value: env.value, priority: parsePriority(s),
			deliveries: env.deliveries, key: string(kv.Key), claimKey: claimKey,
			claimRev: cr.Header.Revision, lease: l,
		}
		l = claimLease{}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			c.revoke(ctx, it.lease.id)
			return nil, ErrClosed
		}
		c.held[it] = struct{}{}
		c.mu.Unlock()
		return it, nil
	}
}

// ackedMark is the value Ack leaves in the claim key of an acknowledged item.
const ackedMark = "acked"

// maxAcked bounds the acknowledged claim keys a claim transaction deletes; any others go
// with their lease.
const maxAcked = 32

// takeAcked returns the claim keys left by this Queue's Acks that the next claim
// transaction deletes: at most ackedCap of them.
func (c *core) takeAcked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.acked), int(c.ackedCap.Load()))
	keys := append([]string(nil), c.acked[:n]...)
	c.acked = append(c.acked[:0], c.acked[n:]...)
	return keys
}

// restoreAcked gives back keys taken by takeAcked whose deletes were not applied. There
// are at most 2*maxAcked pending: addAcked refuses more than maxAcked, and takeAcked
// takes at most maxAcked.
func (c *core) restoreAcked(keys []string) {
	if len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acked = append(keys, c.acked...)
}

func deletes(keys []string) []clientv3.Op {
	ops := make([]clientv3.Op, 0, len(keys)+3)
	for _, k := range keys {
		ops = append(ops, clientv3.OpDelete(k))
	}
	return ops
}

// addAcked records the claim key of an item just acknowledged, for the next claim
// transaction to delete. It reports false if too many are waiting: the key's lease must
// then be revoked rather than reused.
func (c *core) addAcked(claimKey string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.acked) >= maxAcked {
		return false
	}
	c.acked = append(c.acked, claimKey)
	return true
}

// claims maps the suffix of each claim to the claim's create revision.
func (c *core) claims(kvs []*mvccpb.KeyValue) map[string]int64 {
	claims := make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		claims[strings.TrimPrefix(string(kv.Key), c.claimsPrefix())] = kv.CreateRevision
	}
	return claims
}

// bury moves an item that was delivered too often to the dead letters.
func (c *core) bury(ctx context.Context, kv *mvccpb.KeyValue, s string) error {
	_, err := c.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision),
		clientv3.Compare(clientv3.CreateRevision(c.claimKey(s)), "=", 0),
	).Then(
		clientv3.OpDelete(string(kv.Key)),
		clientv3.OpPut(c.deadPrefix()+s, string(kv.Value)),
	).Commit()
	return err
}

// wait returns once an item may have become visible after rev: an item was added or a
// claim went away. It watches; it does not poll.
func (c *core) wait(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.cli.Watch(wctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithPrevKV())
	for {
		var resp clientv3.WatchResponse
		var ok bool
		// Select on ctx too: a watch on a client closed under us never closes.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok = <-wch:
		}
		if !ok {
			return ctx.Err() // nil when the watch ended for another reason: read again
		}
		if resp.Err() != nil {
			return nil // compacted, or no leader: read again
		}
		for _, ev := range resp.Events {
			k := string(ev.Kv.Key)
			switch {
			case ev.IsCreate() && strings.HasPrefix(k, c.itemsPrefix()):
				return nil
			case ev.Type == clientv3.EventTypeDelete && strings.HasPrefix(k, c.claimsPrefix()):
				// The claim of an acknowledged item going makes nothing visible.
				if ev.PrevKv == nil || string(ev.PrevKv.Value) != ackedMark {
					return nil
				}
			}
		}
	}
}

func (c *core) len(ctx context.Context) (int, error) {
	if c.isClosed() {
		return 0, ErrClosed
	}
	resp, err := c.cli.Get(ctx, c.itemsPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return int(resp.Count), nil
}

func (c *core) deadLetters(ctx context.Context) ([]DeadLetter, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	resp, err := c.cli.Get(ctx, c.deadPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		env, err := decode(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("queue: dead letter %s: %w", kv.Key, err)
		}
		s := strings.TrimPrefix(string(kv.Key), c.deadPrefix())
		out = append(out, DeadLetter{ID: env.id, Value: env.value, Priority: parsePriority(s), Deliveries: env.deliveries, key: string(kv.Key)})
	}
	return out, nil
}

func (c *core) deleteDeadLetter(ctx context.Context, d DeadLetter) error {
	if d.key == "" || !strings.HasPrefix(d.key, c.deadPrefix()) {
		return fmt.Errorf("%w: dead letter %q is not from this queue", ErrInvalidArgument, d.ID)
	}
	if c.isClosed() {
		return ErrClosed
	}
	_, err := c.cli.Delete(ctx, d.key)
	return err
}

func (c *core) close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		held, pool := c.held, c.pool
		c.held, c.pool = map[*Item]struct{}{}, nil
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, l := range pool {
			wg.Go(func() { c.revoke(ctx, l.id) })
		}
		for it := range held {
			wg.Go(func() {
				if err := it.release(ctx); err != nil && !errors.Is(err, ErrClaimLost) {
					mu.Lock()
					c.closeErr = errors.Join(c.closeErr, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	})
	return c.closeErr
}
