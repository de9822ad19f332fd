package barrier

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Barrier blocks processes in Wait while one process holds it. The holder's key lives on
// a lease, so a holder that crashes releases the barrier when its lease expires.
type Barrier struct {
	cli *clientv3.Client
	key string
	m   *member
}

// New returns a Barrier on key. It does not block; Hold grants the lease.
func New(cli *clientv3.Client, key string, opts ...Option) (*Barrier, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if key == "" {
		return nil, fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	o, err := build(opts)
	if err != nil {
		return nil, err
	}
	return &Barrier{cli: cli, key: key, m: newMember(cli, o.ttl)}, nil
}

// Hold raises the barrier: Wait blocks everywhere until Release, Close, or the expiry of
// this Barrier's lease. It returns ErrHeld if another Barrier holds it, and nil if this
// one already does.
func (b *Barrier) Hold(ctx context.Context) error {
	s, err := b.m.session(ctx)
	if err != nil {
		return err
	}
	resp, err := b.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(b.key), "=", 0),
	).Then(
		clientv3.OpPut(b.key, "", clientv3.WithLease(s.Lease())),
	).Else(clientv3.OpGet(b.key)).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 && kvs[0].Lease == int64(s.Lease()) {
			return nil
		}
		return ErrHeld
	}
	return nil
}

// Release lowers the barrier held by this Barrier, letting every Wait return. It returns
// ErrNotHeld if this Barrier does not hold it.
func (b *Barrier) Release(ctx context.Context) error {
	if err := b.m.failed(); err != nil {
		return err
	}
	b.m.mu.Lock()
	s := b.m.s
	b.m.mu.Unlock()
	if s == nil {
		return ErrNotHeld
	}
	resp, err := b.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.LeaseValue(b.key), "=", s.Lease()),
	).Then(clientv3.OpDelete(b.key)).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return ErrNotHeld
	}
	return nil
}

// Wait returns at once if the barrier is not held, and otherwise once the hold it found
// has ended (another Barrier may hold it again by then), or when ctx ends. It waits on a
// watch. Anyone may call it; it needs no lease.
func (b *Barrier) Wait(ctx context.Context) error {
	return waitGone(ctx, b.cli, b.key)
}

// waitGone returns once key does not exist, or no longer is the key it first found
// (deleted and written again: a watch that broke in between, compacted, missed it).
func waitGone(ctx context.Context, cli *clientv3.Client, key string) error {
	var found int64 // the create revision of the key first found
	for {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		if found == 0 {
			found = resp.Kvs[0].CreateRevision
		} else if resp.Kvs[0].CreateRevision != found {
			return nil
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		gone := false
		wch := cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1))
	follow:
		for !gone {
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
						gone = true
					}
				}
			}
		}
		cancel()
		if gone {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Done is closed when this Barrier's lease is lost (the barrier it held, if any, is then
// released for everyone) or at Close; Err then says which.
func (b *Barrier) Done() <-chan struct{} { return b.m.Done() }

// Err returns ErrLost or ErrClosed once Done is closed, and nil before.
func (b *Barrier) Err() error { return b.m.Err() }

// Close revokes the lease, which releases the barrier if this Barrier holds it, and
// stops the keep-alives. It waits at most two seconds for etcd and is idempotent.
func (b *Barrier) Close() error {
	b.m.close()
	return nil
}
