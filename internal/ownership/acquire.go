package ownership

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
)

// ErrKeyLost reports that an owned or waiting key was deleted or replaced.
var ErrKeyLost = errors.New("key deleted")

// Acquire starts a new holding as the Claim's Policy says: it puts a key of a name never
// used before under the Holder's lease — so that no delete of this attempt can reach a
// later one — and, when wait is set, blocks until the policy says it is owned, waiting
// only for the key the policy names. Success is returned only right after a read that
// found the key with its create revision, with the lease known to be alive. On failure
// or cancellation the key is dropped (Session.Drop): deleted before Acquire returns, or
// else in the background until the delete lands or the lease is gone. It returns
// Vocab.Busy while the current holding lasts or another Acquire runs, and a non-waiting
// Acquire that finds others ahead returns Vocab.Blocked of the first of them.
func (c *Claim) Acquire(ctx context.Context, wait bool) error {
	if c.closing() {
		return c.v.Closed
	}
	if ctx == nil {
		return fmt.Errorf("%w: nil context", c.v.Invalid)
	}
	c.mu.Lock()
	if c.busy || (c.h != nil && c.h.Check() == nil) {
		c.mu.Unlock()
		return c.v.Busy
	}
	c.busy = true
	old := c.h
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.busy, c.waiting = false, ""
		c.mu.Unlock()
	}()
	if old != nil {
		old.Wait()
	}
	// Close, of the Claim or of its Holder, ends the acquisition: one that went on would
	// hold for a user who has closed, on a lease that may live on (a shared session).
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	defer context.AfterFunc(c.holder.ctx, cancel)()
	ses, err := c.holder.Get(cctx)
	if err == nil {
		err = ses.Err()
	}
	if err != nil {
		return c.v.err(firstErr(ctx.Err(), c.closedErr(), err))
	}
	c.mu.Lock()
	c.seq++
	key := fmt.Sprintf("%s%x-%s-%d", c.dir, int64(ses.Lease()), c.nonce, c.seq)
	c.waiting = key
	c.mu.Unlock()
	// Nothing made while acquiring may outlive the session: a reply lost with the
	// connection must not keep the caller waiting past the session's loss.
	bctx, stop := ses.Bind(cctx)
	defer stop()
	// Not hedged, unlike the other requests of an acquisition: a second put left in
	// flight could land after the key was deleted (a member that stops answering holds
	// it, and applies it when it wakes), and make it again, blocking others for as long
	// as our lease lives.
	resp, err := ses.Client().Txn(bctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, c.val, clientv3.WithLease(ses.Lease())), c.p.Check()).
		Else(clientv3.OpGet(key), c.p.Check()).
		Commit()
	var rev int64
	if err == nil {
		rev = resp.Header.Revision
		if !resp.Succeeded {
			rev = resp.Responses[0].GetResponseRange().Kvs[0].CreateRevision
		}
		ses.Track(key)
		owned, holder := c.p.Held(resp.Responses[1].GetResponseRange(), rev)
		switch {
		case owned:
			err = ses.WaitAlive(bctx)
		case wait:
			err = waitOwned(bctx, ses, key, rev, c.p)
		default:
			err = c.v.Blocked(string(holder.Key), holder.CreateRevision)
		}
	}
	if err != nil {
		// The put may have been applied: the key must not block others.
		if errors.Is(err, ErrKeyLost) {
			ses.Untrack(key)
		} else {
			ses.Drop(key)
		}
		// Report the caller's cancellation first, then Close, then a loss of the session.
		return c.v.err(firstErr(ctx.Err(), c.closedErr(), ses.Err(), err))
	}
	h := NewHolding(ses, key, rev)
	c.mu.Lock()
	if c.closing() {
		// Closed as we acquired: Close could not see this holding, so give it up.
		c.mu.Unlock()
		h.Abandon()
		return c.v.Closed
	}
	c.h = h
	c.mu.Unlock()
	return nil
}

// waitOwned waits until key, of create revision rev, is owned as p says, watching only
// the key p names. ctx ends with the session (Session.Bind).
func waitOwned(ctx context.Context, ses *Session, key string, rev int64, p Policy) error {
	cli := ses.Client()
	retry := backoff.New(50*time.Millisecond, time.Second)
	for {
		// Hedged (see hedged): a silent member must not hold the read.
		tr, err := hedged(ctx, ses.CallTimeout(), func(ctx context.Context) (*clientv3.TxnResponse, error) {
			return cli.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
				Then(p.Blocker(rev)).
				Commit()
		}, nil)
		if err == nil && !tr.Succeeded {
			return fmt.Errorf("%w while waiting", ErrKeyLost)
		}
		if err == nil {
			wkey, prefix, blocked := p.Wait(tr.Responses[0].GetResponseRange())
			if !blocked {
				return ses.WaitAlive(ctx)
			}
			if err = waitDelete(ctx, cli, wkey, prefix, tr.Header.Revision, 2*ses.CallTimeout()); err == nil {
				retry.Reset()
				continue
			}
		}
		// etcd did not answer, or the watch broke: read again.
		if !retry.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// waitDelete returns nil once a delete of key (or under it, with prefix) is seen after
// rev, the revision of a read that found it, or an error if the watch broke, etcd said
// nothing on it for longer than silence, or ctx ended.
//
// The watch starts at rev itself, not after it: etcd answers a progress request only on
// a watch whose start revision the store has reached. A delete at rev, which the read
// already saw (under a prefix, a permit given back), is replayed and ignored: counting it
// would have the waiter read again and again while nothing is written. It runs on a
// stream of this wait's own (see stream), so that a progress answer proves this watch
// alive: a member that stops answering is given up after silence instead of leaving the
// waiter blind to the delete for as long as it lasts. Its creation is hedged after half
// the silence (see watchConfirmed), each try on a stream of its own, so that the watch
// made after the read that follows one given up does not go through the silent member
// again, every time.
func waitDelete(ctx context.Context, cli *clientv3.Client, key string, prefix bool, rev int64, silence time.Duration) error {
	opts := []clientv3.OpOption{clientv3.WithFilterPut()}
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	w, err := watchConfirmed(ctx, silence/2, ownStream(cli, silence), (*stream).close, key, rev, opts...)
	if err != nil {
		return err
	}
	defer w.close()
	for wr := range w.wch {
		w.st.hear()
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			// The watch replays rev itself, which may be a delete under the prefix
			// that the read already saw: only a later one is news.
			if ev.Type == clientv3.EventTypeDelete && ev.Kv.ModRevision > rev {
				return nil
			}
		}
	}
	return firstErr(ctx.Err(), w.st.ended())
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
