package ownership

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
)

// Holding is one period of ownership of a key. It ends on release or loss; loss is
// noticed locally (the session's deadline) at every check, and asynchronously once
// Done has been called (a watch on the key plus the session's loss). The watch is one
// of the watches on the session's one stream (Session.joinStream), which asks etcd for
// progress every CallTimeout however many holdings watch on it: a watched holding costs
// no stream and no periodic request of its own, only a read each time its watch breaks
// or the stream is given up as silent (see monitor).
type Holding struct {
	ses *Session
	key string
	rev int64

	ctx    context.Context // ends with the holding or the session
	cancel context.CancelFunc
	wg     sync.WaitGroup // the monitor

	mu        sync.Mutex
	done      chan struct{}
	err       error
	ended     bool
	started   bool
	releasing bool // a delete of ours is in flight: its event is a release, not a loss
}

// NewHolding starts a holding of key at create revision rev.
func NewHolding(ses *Session, key string, rev int64) *Holding {
	h := &Holding{ses: ses, key: key, rev: rev, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(ses.lostCtx)
	return h
}

// Key returns the owned key.
func (h *Holding) Key() string { return h.key }

// Rev returns the owned key's create revision.
func (h *Holding) Rev() int64 { return h.rev }

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

// Release ends the holding by deleting the key (Session.remove): the one way out of a
// holding that is still ours. It returns nil when the key was ours to delete,
// ErrKeyLost when it was already gone (the holding ends as lost), the holding's end
// when it had already ended, and a network error otherwise: then it is unknown whether
// the delete was applied, the holding stands and Release may be retried.
func (h *Holding) Release(ctx context.Context) error {
	if err := h.Check(); err != nil {
		return err
	}
	h.setReleasing(true)
	// The delete is hedged (see hedged): the key's name is ours alone, so a second
	// delete is safe, and a member that stops answering must not keep the lock held for
	// as long as it is silent. Once more than one was sent, a key found gone may be one
	// that an earlier one of ours deleted unanswered: it was ours to delete.
	var sent atomic.Int32
	deleted, err := hedged(ctx, h.ses.CallTimeout(), func(ctx context.Context) (bool, error) {
		sent.Add(1)
		return h.ses.remove(ctx, h.key)
	}, nil)
	if err != nil {
		h.setReleasing(false)
		return err
	}
	if !deleted && sent.Load() == 1 {
		err = ErrKeyLost
	}
	h.End(err)
	h.wg.Wait()
	return err
}

// Abandon ends the holding as released and leaves the deletion of the key to the
// session (Session.Drop): bounded in time, finished in the background if need be.
func (h *Holding) Abandon() {
	live := h.Check() == nil
	h.setReleasing(true)
	h.End(nil)
	h.wg.Wait()
	if live {
		h.ses.Drop(h.key)
	}
}

func (h *Holding) setReleasing(on bool) {
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
	h.cancel()
}

// Wait waits for the monitor goroutine.
func (h *Holding) Wait() { h.wg.Wait() }

// monitor ends the holding when the key is deleted or replaced, or the session is lost.
//
// It watches the key on the session's stream (Session.joinStream), one for all the
// session's holdings, from a revision at which the key was ours and that the store has
// reached — the key's creation, then each re-read's — so that etcd answers the stream's
// progress requests (see stream); the key's own events at that revision are not news.
// When the watch breaks, or is given up because etcd said nothing on the stream for
// longer than its silence, the key is read again, hedged like the reads of an
// acquisition (see hedged), then watched again from where the read was, the watch's
// creation hedged too (see watchConfirmed): a member that stops answering blinds the
// holding for at most about three CallTimeouts (silence, and up to one tick of the
// check) plus the read's and the new watch's, not for as long as it is silent.
func (h *Holding) monitor() {
	defer h.wg.Done()
	retry := backoff.New(50*time.Millisecond, time.Second)
	rev := h.rev
	for {
		lost, heard := h.watch(rev)
		if lost {
			h.lose(ErrKeyLost)
			return
		}
		if heard {
			retry.Reset()
		}
		// The watch broke or was given up, or the holding ended.
		for reread := false; !reread; {
			select {
			case <-h.ctx.Done():
				h.End(h.ses.Err()) // lost with the session, unless already ended
				return
			case <-time.After(retry.Next()):
			}
			gr, err := h.read()
			if err != nil {
				continue
			}
			if len(gr.Kvs) == 0 || gr.Kvs[0].CreateRevision != h.rev {
				h.lose(ErrKeyLost)
				return
			}
			rev, reread = gr.Header.Revision, true
		}
	}
}

// watch watches the key from rev until it is deleted or replaced (lost) or the watch
// ends: it broke, its stream was given up as silent, or the holding ended. heard reports
// whether etcd confirmed it. Its creation is hedged (see watchConfirmed): a watch made
// again after one given up as silent would otherwise go through the silent member
// again, every time.
func (h *Holding) watch(rev int64) (lost, heard bool) {
	w, err := watchConfirmed(h.ctx, h.ses.CallTimeout(), h.ses.joinStream, h.ses.leaveStream, h.key, rev)
	if err != nil {
		return false, false
	}
	defer w.close()
	for wr := range w.wch {
		if wr.Err() != nil {
			return false, true
		}
		w.st.hear()
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != h.rev {
				return true, true
			}
		}
	}
	return false, true
}

// read reads the key, hedged (see hedged): a member that stops answering must not hold
// up the read that follows a watch it left silent.
func (h *Holding) read() (*clientv3.GetResponse, error) {
	ctx, cancel := context.WithTimeout(h.ctx, h.ses.ttlOr(5*time.Second))
	defer cancel()
	cli := h.ses.Client()
	return hedged(ctx, h.ses.CallTimeout(), func(ctx context.Context) (*clientv3.GetResponse, error) {
		return cli.Get(ctx, h.key)
	}, nil)
}

// lose ends the holding as lost with err — unless the key is gone while a delete of ours
// is in flight: that is our release, however its disappearance was noticed.
func (h *Holding) lose(err error) {
	h.mu.Lock()
	releasing := h.releasing
	h.mu.Unlock()
	if releasing && errors.Is(err, ErrKeyLost) {
		err = nil
	}
	h.End(err)
}
