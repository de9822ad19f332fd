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
)

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
type Observer struct {
	cli *clientv3.Client
	dir string
	lg  *zap.Logger
	ch  chan Leader

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
		ch: make(chan Leader, 1), ctx: ctx, cancel: cancel,
	}
	obs.wg.Add(1)
	go obs.run()
	return obs, nil
}

// Changes returns the leader each time it changes, the zero Leader when there is none.
// It is closed after Close. The consumer must keep receiving: the Observer waits for it.
func (o *Observer) Changes() <-chan Leader { return o.ch }

// Err returns ErrClosed after Close; while running, the error that keeps the Observer
// from reading the election (it retries on its own), or nil.
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

func (o *Observer) run() {
	defer o.wg.Done()
	defer close(o.ch)
	retry := backoff.New(50*time.Millisecond, 2*time.Second)
	var last *Leader
	send := func(l Leader) bool {
		if last != nil && *last == l {
			return true
		}
		select {
		case o.ch <- l:
			last = &l
			return true
		case <-o.ctx.Done():
			return false
		}
	}
	for o.ctx.Err() == nil {
		resp, err := o.cli.Get(o.ctx, o.dir, clientv3.WithFirstCreate()...)
		if err != nil {
			if o.ctx.Err() != nil {
				return
			}
			o.setErr(err)
			o.lg.Warn("observer: read failed; retrying", zap.Error(err))
			retry.Wait(o.ctx)
			continue
		}
		o.setErr(nil)
		retry.Reset()
		var cur Leader
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			cur = Leader{ID: string(kv.Value), Key: string(kv.Key), Token: kv.CreateRevision}
		}
		if !send(cur) {
			return
		}
		// Follow changes from the read on; a deleted leader needs a read to find the next.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(o.ctx))
		wch := o.cli.Watch(wctx, o.dir, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		reread := false
		for !reread {
			wr, ok := <-wch
			if !ok || wr.Err() != nil {
				if ok {
					o.setErr(wr.Err())
					o.lg.Info("observer: watch broke; reading again", zap.Error(wr.Err()))
				}
				break
			}
			for _, ev := range wr.Events {
				switch {
				case ev.Type == clientv3.EventTypeDelete && string(ev.Kv.Key) == cur.Key:
					reread = true
				case ev.Type == clientv3.EventTypePut && !cur.Elected():
					cur = Leader{ID: string(ev.Kv.Value), Key: string(ev.Kv.Key), Token: ev.Kv.CreateRevision}
				case ev.Type == clientv3.EventTypePut && string(ev.Kv.Key) == cur.Key:
					cur.ID = string(ev.Kv.Value)
				}
				if reread {
					break
				}
				// Every leader is reported, even one that lasted a single event.
				if !send(cur) {
					cancel()
					return
				}
			}
		}
		cancel()
		if !reread && o.ctx.Err() == nil {
			retry.Wait(o.ctx)
		}
	}
}
