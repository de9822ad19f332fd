package barrier

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DoubleBarrier lets count participants start a computation together (Enter) and finish
// it together (Leave). Each participant's key lives on its lease, so a participant that
// crashes is counted out when the lease expires.
type DoubleBarrier struct {
	cli   *clientv3.Client
	key   string
	count int
	m     *member

	mu       sync.Mutex
	mine     string // our key while entered
	readyRev int64  // the revision at which the barrier opened for us
}

// NewDouble returns a DoubleBarrier of count participants on key. It does not block;
// Enter grants the lease. All participants use the same key and count.
func NewDouble(cli *clientv3.Client, key string, count int, opts ...Option) (*DoubleBarrier, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if key == "" {
		return nil, fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	if count < 1 {
		return nil, fmt.Errorf("%w: count %d is under 1", ErrInvalidArgument, count)
	}
	o, err := build(opts)
	if err != nil {
		return nil, err
	}
	key = strings.TrimSuffix(key, "/")
	return &DoubleBarrier{cli: cli, key: key, count: count, m: newMember(cli, o.ttl)}, nil
}

func (b *DoubleBarrier) waiters() string { return b.key + "/waiters/" }
func (b *DoubleBarrier) ready() string   { return b.key + "/ready" }

// Enter registers this participant and returns once count participants are inside,
// counting only those whose leases live. If ctx ends first, it removes its key again.
func (b *DoubleBarrier) Enter(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mine != "" {
		return ErrEntered
	}
	s, err := b.m.session(ctx)
	if err != nil {
		return err
	}
	mine := fmt.Sprintf("%s%016x", b.waiters(), int64(s.Lease()))
	resp, err := b.cli.Txn(ctx).Then(
		clientv3.OpPut(mine, "", clientv3.WithLease(s.Lease())),
		clientv3.OpGet(b.waiters(), clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		// The put may have been applied (the reply lost, or ctx ended in flight): our key
		// must not count us in while we are gone.
		b.remove(ctx, mine)
		return err
	}
	rev := resp.Header.Revision
	if resp.Responses[1].GetResponseRange().Count >= int64(b.count) {
		// We complete the group: open the barrier for the others.
		pr, err := b.cli.Put(ctx, b.ready(), "", clientv3.WithLease(s.Lease()))
		if err != nil {
			b.remove(ctx, mine)
			return err
		}
		b.mine, b.readyRev = mine, pr.Header.Revision
		return nil
	}
	// Wait for the participant that completes the group. A ready key from an earlier
	// round predates our key and so is not in the watch from rev+1.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for {
		wch := b.cli.Watch(wctx, b.ready(), clientv3.WithRev(rev+1))
		for {
			select {
			case <-b.m.Done():
				return b.m.Err()
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil {
					if ctx.Err() != nil {
						b.remove(ctx, mine)
						return ctx.Err()
					}
					if wr.CompactRevision != 0 {
						// Our watch start was compacted: read the ready key instead.
						if opened, at, err := b.openedSince(ctx, rev); err != nil {
							b.remove(ctx, mine)
							return err
						} else if opened {
							b.mine, b.readyRev = mine, at
							return nil
						}
						rev = wr.CompactRevision - 1
					}
					goto rewatch
				}
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypePut {
						b.mine, b.readyRev = mine, ev.Kv.ModRevision
						return nil
					}
				}
				rev = wr.Header.Revision
			}
		}
	rewatch:
	}
}

// openedSince reports whether the ready key was written after rev.
func (b *DoubleBarrier) openedSince(ctx context.Context, rev int64) (bool, int64, error) {
	resp, err := b.cli.Get(ctx, b.ready())
	if err != nil {
		return false, 0, err
	}
	if len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision > rev {
		return true, resp.Kvs[0].ModRevision, nil
	}
	return false, 0, nil
}

// remove deletes our key after a failed or canceled Enter, even if ctx has ended.
func (b *DoubleBarrier) remove(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, _ = b.cli.Delete(ctx, key)
}

// Leave removes this participant and returns once every participant that was inside
// with it has left: deleted its key, or been counted out by the expiry of its lease.
// Participants that entered after the barrier opened (for a later round) are not waited
// for. On a canceled ctx it returns ctx.Err(), having left.
func (b *DoubleBarrier) Leave(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mine == "" {
		return ErrNotEntered
	}
	if err := b.m.failed(); err != nil {
		return err
	}
	resp, err := b.cli.Txn(ctx).Then(
		clientv3.OpDelete(b.mine),
		clientv3.OpGet(b.waiters(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return err
	}
	b.mine = ""
	cohort := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if kv.CreateRevision < b.readyRev {
			cohort[string(kv.Key)] = true
		}
	}
	rev := resp.Header.Revision
	for len(cohort) > 0 {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := b.cli.Watch(wctx, b.waiters(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	follow:
		for len(cohort) > 0 {
			// Select on ctx too: a watch on a client closed under us never closes.
			select {
			case <-ctx.Done():
				break follow
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil {
					break follow
				}
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypeDelete {
						delete(cohort, string(ev.Kv.Key))
					}
				}
				rev = wr.Header.Revision
			}
		}
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(cohort) > 0 {
			// The watch broke (compaction, no leader): read who is still there.
			gr, err := b.cli.Get(ctx, b.waiters(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
			if err != nil {
				return err
			}
			still := map[string]bool{}
			for _, kv := range gr.Kvs {
				if cohort[string(kv.Key)] {
					still[string(kv.Key)] = true
				}
			}
			cohort, rev = still, gr.Header.Revision
		}
	}
	// The last one out tidies up the ready key of this round.
	_, _ = b.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(b.ready()), "=", b.readyRev),
	).Then(clientv3.OpDelete(b.ready())).Commit()
	return nil
}

// Done is closed when this participant's lease is lost (etcd then counts it out) or at
// Close; Err then says which.
func (b *DoubleBarrier) Done() <-chan struct{} { return b.m.Done() }

// Err returns ErrLost or ErrClosed once Done is closed, and nil before.
func (b *DoubleBarrier) Err() error { return b.m.Err() }

// Close revokes the lease, which counts this participant out wherever it is, and stops
// the keep-alives. It waits at most two seconds for etcd and is idempotent.
func (b *DoubleBarrier) Close() error {
	b.m.close()
	return nil
}
