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

// ErrBlocked is returned by a non-waiting Acquire when others own the prefix.
var ErrBlocked = errors.New("blocked")

// Blocked describes who blocked a non-waiting Acquire.
type Blocked struct {
	Key   string
	Value []byte
	Rev   int64
}

// acquire puts key under the session's lease (or finds it there) and, when wait is set,
// blocks until the policy says it is owned (see Claim.Acquire). The caller must never use
// the name key again, so that no delete of this attempt can reach a later one.
func acquire(ctx context.Context, ses *Session, key, val string, p Policy, wait bool) (int64, *Blocked, error) {
	cli := ses.Client()
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(ses.Lease())), p.Check()).
		Else(clientv3.OpGet(key), p.Check()).
		Commit()
	if err != nil {
		// The put may have been applied: the key must not block others.
		ses.Drop(key, 0)
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
			ses.Drop(key, rev)
			return 0, nil, err
		}
		return rev, nil, nil
	}
	if !wait {
		ses.Drop(key, rev)
		b := &Blocked{}
		if holder != nil {
			b.Key, b.Value, b.Rev = string(holder.Key), holder.Value, holder.CreateRevision
		}
		return 0, b, ErrBlocked
	}
	if err := waitOwned(ctx, ses, key, rev, p); err != nil {
		if errors.Is(err, ErrKeyLost) {
			ses.Untrack(key)
		} else {
			ses.Drop(key, rev)
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
