package election

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// observerCallTimeout is an Observer's call timeout: that of a candidate of the default
// TTL, a sixth of it (1.67s; see ownership.Session.CallTimeout).
var observerCallTimeout = min(max(ownership.Margin(defaults().ttl), time.Second), 3*time.Second)

// Leader is a leader as observed: its ID (its key's value), key, and fencing token (the
// key's create revision). The zero Leader means "no leader".
type Leader struct {
	ID    string
	Key   string
	Token int64
}

// Elected reports whether l is a leader rather than "no leader".
func (l Leader) Elected() bool { return l.Key != "" }

// Observer follows the leader of an election without taking part in it.
//
// It reads the leader, then follows it on a watch of its own: one gRPC stream of its
// own, on which it asks etcd for progress once every call timeout (observerCallTimeout)
// — the cost of noticing that the member the stream goes through has stopped answering.
// When etcd answers nothing on it for twice the call timeout, the watch is given up, the
// leader read again and watched again, each sent again through the client's next
// endpoint while unanswered after a call timeout.
type Observer struct {
	cli *clientv3.Client
	dir string
	lg  *zap.Logger
	ch  chan Leader
	// callTimeout bounds each wait for etcd's answer before a request is sent again
	// through the next endpoint; twice it, the silence after which the watch is given up.
	callTimeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error
}

// NewObserver starts following the election under prefix. The first value on Changes
// is the leader at start (or the zero Leader). Option: WithLogger.
func NewObserver(cli *clientv3.Client, prefix string, opts ...Option) (*Observer, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if strings.TrimRight(prefix, "/") == "" {
		return nil, fmt.Errorf("%w: empty prefix", ErrInvalidArgument)
	}
	o, err := buildOptions(forObserver, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	obs := &Observer{
		cli: cli, dir: strings.TrimRight(prefix, "/") + "/", lg: o.logger,
		ch: make(chan Leader, 1), callTimeout: observerCallTimeout, ctx: ctx, cancel: cancel,
	}
	obs.wg.Add(1)
	go obs.run()
	return obs, nil
}

// Changes returns the leader each time it changes, the zero Leader when there is none.
// It is closed after Close. The consumer must keep receiving: the Observer waits for it.
func (o *Observer) Changes() <-chan Leader { return o.ch }

// Err returns ErrClosed after Close; while running, the error that keeps the Observer
// from following the election — a failed read or watch, a watch that broke or was given
// up because etcd answered nothing on it (it retries on its own) — until it follows
// again (a read, and a watch that etcd confirmed), or nil. A watch that has gone silent
// but is not given up yet goes unnoticed: up to three call timeouts.
func (o *Observer) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (o *Observer) setErr(err error) {
	o.mu.Lock()
	if !errors.Is(o.err, ErrClosed) {
		o.err = err
	}
	o.mu.Unlock()
}

// Close stops the Observer and closes Changes. Idempotent.
func (o *Observer) Close() error {
	o.mu.Lock()
	o.err = ErrClosed
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
	return nil
}

// run reads the leader, reports it and follows it on a watch until the leader's key is
// deleted (a read finds the next), the watch breaks or is given up as silent (the
// leader is read again), or the Observer closes.
func (o *Observer) run() {
	defer o.wg.Done()
	defer close(o.ch)
	retry := backoff.New(50*time.Millisecond, 2*time.Second)
	var last *Leader
	// send reports l unless it was the last reported, waiting for the consumer. While it
	// waits, the watch st (if any) goes unread: that is not etcd's silence, so the
	// stream is told it heard from etcd, lest it be given up.
	send := func(l Leader, st *ownership.Stream) bool {
		if last != nil && *last == l {
			return true
		}
		var heard <-chan time.Time
		if st != nil {
			t := time.NewTicker(o.callTimeout / 2)
			defer t.Stop()
			heard = t.C
		}
		for {
			select {
			case o.ch <- l:
				last = &l
				if st != nil {
					st.Hear()
				}
				return true
			case <-heard:
				st.Hear()
			case <-o.ctx.Done():
				return false
			}
		}
	}
	for o.ctx.Err() == nil {
		resp, err := o.read()
		if err != nil {
			if o.ctx.Err() != nil {
				return
			}
			o.setErr(err)
			o.lg.Warn("observer: read failed; retrying", zap.Error(err))
			retry.Wait(o.ctx)
			continue
		}
		var cur Leader
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			cur = Leader{ID: string(kv.Value), Key: string(kv.Key), Token: kv.CreateRevision}
		}
		if !send(cur, nil) {
			return
		}
		rev := resp.Header.Revision
		w, err := o.watch(rev)
		if err != nil {
			if o.ctx.Err() != nil {
				return
			}
			o.setErr(err)
			o.lg.Warn("observer: watch failed; reading again", zap.Error(err))
			retry.Wait(o.ctx)
			continue
		}
		o.setErr(nil)
		retry.Reset()
		reread, err := o.follow(w, rev, cur, send)
		w.Close()
		switch {
		case o.ctx.Err() != nil:
			return
		case reread:
		case errors.Is(err, ownership.ErrWatchSilent):
			err = fmt.Errorf("observer: etcd answered nothing on the watch for %v: %w", 2*o.callTimeout, err)
			o.setErr(err)
			o.lg.Warn("observer: watch silent; reading again", zap.Error(err))
		default:
			o.setErr(err)
			o.lg.Info("observer: watch broke; reading again", zap.Error(err))
			retry.Wait(o.ctx)
		}
	}
}

// read reads the oldest key of the election, hedged (see ownership.Hedged): sent again
// through the client's next endpoint while unanswered after a call timeout, so that a
// member that stops answering does not hold it up for as long as it is silent.
func (o *Observer) read() (*clientv3.GetResponse, error) {
	return ownership.Hedged(o.ctx, o.callTimeout, func(ctx context.Context) (*clientv3.GetResponse, error) {
		return o.cli.Get(ctx, o.dir, clientv3.WithFirstCreate()...)
	}, nil)
}

// watch watches the election from rev, the revision of a read, on a stream of its own
// (see ownership.Stream), given up when etcd answers nothing on it for twice the call
// timeout. It returns once etcd has confirmed the watch. That is hedged too (see
// ownership.WatchConfirmed): a watch not confirmed after a call timeout is made again on
// another stream, which the client opens through its next endpoint, and the first
// confirmed is kept. Otherwise the watch made after one given up as silent could go
// through the silent member again, and again: the client takes its endpoints in turn,
// and with two of them and nothing else sent, the one read between two watches leaves
// every watch on the silent member.
func (o *Observer) watch(rev int64) (*ownership.Watch, error) {
	return ownership.WatchConfirmed(o.ctx, o.cli, o.callTimeout, o.dir, rev, clientv3.WithPrefix())
}

// follow reports the leader from the watch w, which starts at rev, the revision of the
// read that found cur. It returns reread when cur's key is deleted (a read finds the
// next leader), and otherwise why the watch ended: it broke, it was given up as silent
// (ownership.ErrWatchSilent), or the Observer closed.
func (o *Observer) follow(w *ownership.Watch, rev int64, cur Leader, send func(Leader, *ownership.Stream) bool) (reread bool, err error) {
	for {
		wr, ok := <-w.Chan()
		if !ok {
			return false, w.Stream().Ended()
		}
		if err := wr.Err(); err != nil {
			return false, err
		}
		w.Stream().Hear() // an event, a progress answer: the watch is alive
		for _, ev := range wr.Events {
			if ev.Kv.ModRevision <= rev {
				continue // the watch replays rev itself, which the read saw
			}
			switch {
			case ev.Type == clientv3.EventTypeDelete && string(ev.Kv.Key) == cur.Key:
				return true, nil
			case ev.Type == clientv3.EventTypePut && !cur.Elected():
				cur = Leader{ID: string(ev.Kv.Value), Key: string(ev.Kv.Key), Token: ev.Kv.CreateRevision}
			case ev.Type == clientv3.EventTypePut && string(ev.Kv.Key) == cur.Key:
				cur.ID = string(ev.Kv.Value)
			}
			// Every leader is reported, even one that lasted a single event.
			if !send(cur, w.Stream()) {
				return false, o.ctx.Err()
			}
		}
	}
}
