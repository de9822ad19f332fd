package ownership

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
)

// ErrKeyLost reports that an owned or waiting key was deleted or replaced.
var ErrKeyLost = errors.New("key deleted")

// ErrUncertain marks a failure after which a delete of the key may still be in flight.
var ErrUncertain = errors.New("cleanup of the key failed")

// ErrBlocked is returned by a non-waiting Acquire when others own the prefix.
var ErrBlocked = errors.New("blocked")

// Policy decides when a key under a prefix is owned.
type Policy struct {
	// Check runs in the acquire transaction; Held decides from its result whether the
	// key of create revision rev is owned, and returns the first blocking key otherwise.
	Check func() clientv3.Op
	Held  func(rr *pb.RangeResponse, rev int64) (owned bool, holder *mvccpb.KeyValue)
	// Blocker reads what blocks rev; Wait decides from it what to watch for deletion
	// (a key, or every key under a prefix); blocked false means owned.
	Blocker func(rev int64) clientv3.Op
	Wait    func(rr *pb.RangeResponse) (key string, prefix bool, blocked bool)
}

// Predecessor is the policy of a mutex or an election: the oldest key under pfx owns it,
// and a waiter waits only for the key just older than its own.
func Predecessor(pfx string) Policy {
	return Policy{
		Check: func() clientv3.Op { return clientv3.OpGet(pfx, clientv3.WithFirstCreate()...) },
		Held: func(rr *pb.RangeResponse, rev int64) (bool, *mvccpb.KeyValue) {
			if len(rr.Kvs) == 0 || rr.Kvs[0].CreateRevision == rev {
				return true, nil
			}
			return false, rr.Kvs[0]
		},
		Blocker: func(rev int64) clientv3.Op {
			return clientv3.OpGet(pfx, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(rev-1))...)
		},
		Wait: func(rr *pb.RangeResponse) (string, bool, bool) {
			if len(rr.Kvs) == 0 {
				return "", false, false
			}
			return string(rr.Kvs[0].Key), false, true
		},
	}
}

// Semaphore is the policy of n permits: a key is owned while fewer than n keys under pfx
// are older; a waiter wakes on any delete under pfx.
func Semaphore(pfx string, n int) Policy {
	return Policy{
		Check: func() clientv3.Op {
			return clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(int64(n)))
		},
		Held: func(rr *pb.RangeResponse, rev int64) (bool, *mvccpb.KeyValue) {
			for _, kv := range rr.Kvs {
				if kv.CreateRevision == rev {
					return true, nil
				}
			}
			if len(rr.Kvs) == 0 {
				return true, nil
			}
			return false, rr.Kvs[0]
		},
		Blocker: func(rev int64) clientv3.Op {
			return clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMaxCreateRev(rev-1))
		},
		Wait: func(rr *pb.RangeResponse) (string, bool, bool) {
			return pfx, true, len(rr.Kvs) >= n
		},
	}
}

// ReadWrite is the policy of a readers-writer lock with writer preference: writers'
// keys live under pfx+"w/", readers' under pfx+"r/". A writer owns the lock when no older
// key of either kind exists; a reader when no older writer exists, so readers that
// arrive after a waiting writer queue behind it.
func ReadWrite(pfx string, writer bool) Policy {
	if writer {
		return Predecessor(pfx)
	}
	wpfx := pfx + "w/"
	return Policy{
		Check: func() clientv3.Op { return clientv3.OpGet(wpfx, clientv3.WithFirstCreate()...) },
		Held: func(rr *pb.RangeResponse, rev int64) (bool, *mvccpb.KeyValue) {
			if len(rr.Kvs) == 0 || rr.Kvs[0].CreateRevision > rev {
				return true, nil
			}
			return false, rr.Kvs[0]
		},
		Blocker: func(rev int64) clientv3.Op {
			return clientv3.OpGet(wpfx, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(rev-1))...)
		},
		Wait: Predecessor(wpfx).Wait,
	}
}

// Blocked describes who blocked a non-waiting Acquire.
type Blocked struct {
	Key   string
	Value []byte
	Rev   int64
}

// Acquire puts key under the session's lease (or finds it there) and, when wait is set,
// blocks until the policy says it is owned. Success is returned only right after a
// read that found key with its create revision, and with the lease known to be alive.
// On failure or cancellation the key is removed. A non-waiting Acquire that finds the
// prefix owned returns an error wrapping ErrBlocked and the holder.
func Acquire(ctx context.Context, ses *Session, key, val string, p Policy, wait bool) (int64, *Blocked, error) {
	if err := ses.Err(); err != nil {
		return 0, nil, err
	}
	// Nothing made while acquiring may outlive the session: a reply lost with the
	// connection must not keep the caller waiting past the session's loss.
	bctx, stop := ses.Bind(ctx)
	rev, b, err := acquire(bctx, ses, key, val, p, wait)
	stop()
	if err != nil && b == nil {
		// Report the caller's cancellation first, then a loss of the session.
		err = firstErr(ctx.Err(), ses.Err(), err)
	}
	return rev, b, err
}

func acquire(ctx context.Context, ses *Session, key, val string, p Policy, wait bool) (int64, *Blocked, error) {
	cli := ses.Client()
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(ses.Lease())), p.Check()).
		Else(clientv3.OpGet(key), p.Check()).
		Commit()
	if err != nil {
		// The put may have been applied: remove it so it does not block others. If that
		// fails too, a delete of the key may still be on its way: the caller must not
		// create a key of that name again.
		if ses.Err() != nil {
			return 0, nil, err // the key goes with the lost lease
		}
		if rerr := Remove(ses, key, 0); rerr != nil {
			return 0, nil, fmt.Errorf("%w (%w: %v)", err, ErrUncertain, rerr)
		}
		return 0, nil, err
	}
	rev := resp.Header.Revision
	if !resp.Succeeded {
		rev = resp.Responses[0].GetResponseRange().Kvs[0].CreateRevision
	}
	rr := resp.Responses[1].GetResponseRange()
	ses.Track(key, rev)
	owned, holder := p.Held(rr, rev)
	if owned {
		if err := ses.WaitAlive(ctx); err != nil {
			if ses.Err() == nil {
				_ = Remove(ses, key, rev)
			}
			return 0, nil, err
		}
		return rev, nil, nil
	}
	if !wait {
		_ = Remove(ses, key, rev)
		b := &Blocked{}
		if holder != nil {
			b.Key, b.Value, b.Rev = string(holder.Key), holder.Value, holder.CreateRevision
		}
		return 0, b, ErrBlocked
	}
	if err := waitOwned(ctx, ses, key, rev, p); err != nil {
		err = firstErr(ctx.Err(), ses.Err(), err)
		// After a loss of the session the key goes with it: an owned lease is left to
		// expire, a borrowed one's tracked keys are deleted by the session.
		switch {
		case errors.Is(err, ErrKeyLost):
			ses.Untrack(key)
		case ses.Err() == nil:
			_ = Remove(ses, key, rev) // untracks on success
		}
		return 0, nil, err
	}
	return rev, nil, nil
}

func waitOwned(ctx context.Context, ses *Session, key string, rev int64, p Policy) error {
	cli := ses.Client()
	retry := backoff.New(50*time.Millisecond, time.Second)
	for {
		if err := ses.Err(); err != nil {
			return err
		}
		tr, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
			Then(p.Blocker(rev)).
			Commit()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !waitRetry(ctx, ses, retry) {
				return firstErr(ctx.Err(), ses.Err())
			}
			continue
		}
		if !tr.Succeeded {
			return fmt.Errorf("%w while waiting", ErrKeyLost)
		}
		wkey, prefix, blocked := p.Wait(tr.Responses[0].GetResponseRange())
		if !blocked {
			return ses.WaitAlive(ctx)
		}
		if err := waitDelete(ctx, ses, wkey, prefix, tr.Header.Revision+1); err != nil {
			if ctx.Err() != nil || ses.Err() != nil {
				return firstErr(ctx.Err(), ses.Err())
			}
			if !waitRetry(ctx, ses, retry) {
				return firstErr(ctx.Err(), ses.Err())
			}
			continue
		}
		retry.Reset()
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func waitRetry(ctx context.Context, ses *Session, b *backoff.Backoff) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-ses.Lost():
		return false
	}
}

// waitDelete returns nil once a delete of key (or under it, with prefix) is seen at or
// after rev, or an error if the watch broke, ctx ended or the session was lost.
func waitDelete(ctx context.Context, ses *Session, key string, prefix bool, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithRev(rev), clientv3.WithFilterPut()}
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	wch := ses.Client().Watch(wctx, key, opts...)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ses.Lost():
			return ses.Err()
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := wr.Err(); err != nil {
				return err
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return nil
				}
			}
		}
	}
}

// Remove deletes key, if rev is 0 unconditionally, else only while it has create
// revision rev, with a fresh context so that a cancelled caller still cleans up.
func Remove(ses *Session, key string, rev int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), ses.ttlOr(5*time.Second))
	defer cancel()
	cli := ses.Client()
	var err error
	if rev == 0 {
		_, err = cli.Delete(ctx, key)
	} else {
		_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
			Then(clientv3.OpDelete(key)).Commit()
	}
	if err == nil {
		ses.Untrack(key)
	}
	return err
}

// Release deletes key guarded by its create revision; held reports whether it was
// still ours.
func Release(ctx context.Context, ses *Session, key string, rev int64) (held bool, err error) {
	resp, err := ses.Client().Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return false, err
	}
	ses.Untrack(key)
	return resp.Succeeded, nil
}

// ReleaseUnique deletes key with a plain delete. That is as safe as a delete guarded by
// the create revision — and cheaper for etcd — provided the caller never creates a key
// of that name again after a delete of it failed (and so may still arrive): no retried
// or late delete can then reach a later holding, and no other participant ever uses the
// name. held reports whether the key was there.
func ReleaseUnique(ctx context.Context, ses *Session, key string) (held bool, err error) {
	resp, err := ses.Client().Delete(ctx, key)
	if err != nil {
		return false, err
	}
	ses.Untrack(key)
	return resp.Deleted == 1, nil
}

// Holding is one period of ownership of a key. It ends on release or loss; loss is
// noticed locally (the session's deadline) at every check, and asynchronously once
// Done has been called (a watch on the key plus the session's loss).
type Holding struct {
	ses *Session
	key string
	rev int64

	mu        sync.Mutex
	done      chan struct{}
	err       error
	ended     bool
	started   bool
	ctx       context.Context
	cancel    context.CancelFunc
	stopLost  func() bool
	releasing bool // a delete of ours is in flight: its event is a release, not a loss
	wg        sync.WaitGroup
}

// NewHolding starts a holding of key at create revision rev.
func NewHolding(ses *Session, key string, rev int64) *Holding {
	return &Holding{ses: ses, key: key, rev: rev, done: make(chan struct{})}
}

// Key returns the owned key.
func (h *Holding) Key() string { return h.key }

// Rev returns the owned key's create revision.
func (h *Holding) Rev() int64 { return h.rev }

// Session returns the session the key is bound to.
func (h *Holding) Session() *Session { return h.ses }

// Cmp returns a comparison that holds in a transaction only while the owned key exists
// with its create revision: the fence every guarded write uses.
func (h *Holding) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(h.key), "=", h.rev)
}

// Never returns a comparison that no transaction satisfies (a create revision is never
// negative), the guard of an owner that holds nothing.
func Never(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", -1)
}

// Txn applies ops in one transaction only if the holding still lasts when etcd applies
// it. When the guard fails the holding ends and the error is ErrKeyLost.
func (h *Holding) Txn(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	resp, err := h.ses.Client().Txn(ctx).If(h.Cmp()).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		h.End(ErrKeyLost)
		return nil, ErrKeyLost
	}
	return resp, nil
}

// Done returns a channel closed when the holding ends, starting the loss monitor.
func (h *Holding) Done() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started && !h.ended {
		h.started = true
		h.ctx, h.cancel = context.WithCancel(context.Background())
		ses := h.ses
		h.stopLost = ses.OnLost(func() {
			if err := ses.Err(); err != nil {
				h.End(err)
			} else {
				h.End(ErrClosed)
			}
		})
		h.wg.Add(1)
		go h.monitor()
	}
	return h.done
}

// Err returns why the holding ended: nil while it lasts or after a release.
func (h *Holding) Err() error {
	_ = h.Check()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Check returns nil while the holding lasts as far as can be told without I/O; it ends
// the holding when the session is no longer known to be alive.
func (h *Holding) Check() error {
	h.mu.Lock()
	ended, err := h.ended, h.err
	h.mu.Unlock()
	if ended {
		if err == nil {
			err = errors.New("released")
		}
		return err
	}
	if err := h.ses.Alive(); err != nil {
		h.End(err)
		return err
	}
	return nil
}

// Releasing marks that the owner is deleting the key (on) or that the delete failed
// (off), so the monitor takes the deletion for a release.
func (h *Holding) Releasing(on bool) {
	h.mu.Lock()
	h.releasing = on
	h.mu.Unlock()
}

// End ends the holding with err (nil for a release), stopping the monitor.
func (h *Holding) End(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return
	}
	h.ended = true
	h.err = err
	close(h.done)
	if h.started {
		h.cancel()
		h.stopLost()
	}
}

// Wait waits for the monitor goroutine.
func (h *Holding) Wait() { h.wg.Wait() }

func (h *Holding) monitor() {
	defer h.wg.Done()
	cli := h.ses.Client()
	retry := backoff.New(50*time.Millisecond, time.Second)
	next := h.rev + 1
	for {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(h.ctx))
		wch := cli.Watch(wctx, h.key, clientv3.WithRev(next))
		lost, stop := h.watch(wch, &next)
		cancel()
		if stop {
			return
		}
		if lost != nil {
			h.mu.Lock()
			releasing := h.releasing
			h.mu.Unlock()
			if releasing && errors.Is(lost, ErrKeyLost) {
				lost = nil
			}
			h.End(lost)
			return
		}
		// The watch broke: re-read the key, then watch again from where the read was.
		for {
			t := time.NewTimer(retry.Next())
			select {
			case <-h.ctx.Done():
				t.Stop()
				return
			case <-h.ses.Lost():
				t.Stop()
				h.End(h.ses.Err())
				return
			case <-t.C:
			}
			gctx, gcancel := context.WithTimeout(h.ctx, h.ses.ttlOr(5*time.Second))
			gr, err := cli.Get(gctx, h.key)
			gcancel()
			if err != nil {
				continue
			}
			if len(gr.Kvs) == 0 || gr.Kvs[0].CreateRevision != h.rev {
				h.End(ErrKeyLost)
				return
			}
			next = gr.Header.Revision + 1
			break
		}
	}
}

// watch consumes wch until the key is lost (lost non-nil), the holding ends (stop), or
// the watch breaks (both zero).
func (h *Holding) watch(wch clientv3.WatchChan, next *int64) (lost error, stop bool) {
	for {
		select {
		case <-h.ctx.Done():
			return nil, true
		case <-h.ses.Lost():
			return h.ses.Err(), false
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return nil, false
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != h.rev {
					return ErrKeyLost, false
				}
			}
			if wr.Header.Revision >= *next {
				*next = wr.Header.Revision + 1
			}
		}
	}
}
