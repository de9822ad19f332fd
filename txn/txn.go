package txn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cond is what a key must look like for a guarded write to happen.
type Cond struct {
	kind  condKind
	value []byte
	rev   int64
}

type condKind int

const (
	condAbsent condKind = iota
	condValue
	condModRev
)

// ValueIs holds when the key exists with exactly value v.
func ValueIs(v []byte) Cond { return Cond{kind: condValue, value: v} }

// ModRevisionIs holds when the key was last written at revision rev; rev 0 means the key
// is absent.
func ModRevisionIs(rev int64) Cond { return Cond{kind: condModRev, rev: rev} }

// Absent holds when the key does not exist.
func Absent() Cond { return Cond{kind: condAbsent} }

// Cmp returns the etcd comparison of c on key, for callers composing their own
// transactions.
func (c Cond) Cmp(key string) clientv3.Cmp {
	switch c.kind {
	case condValue:
		// etcd fails a value comparison on a missing key, so this also requires existence.
		return clientv3.Compare(clientv3.Value(key), "=", string(c.value))
	case condModRev:
		return clientv3.Compare(clientv3.ModRevision(key), "=", c.rev)
	default:
		return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
}

func (c Cond) String() string {
	switch c.kind {
	case condValue:
		return fmt.Sprintf("value is %q", c.value)
	case condModRev:
		return fmt.Sprintf("mod revision is %d", c.rev)
	default:
		return "absent"
	}
}

func check(kv clientv3.KV, key string) error {
	if kv == nil {
		return fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	return nil
}

// guarded runs If(cond) Then(op) Else(Get key) and turns a failed guard into a
// *ConflictError carrying the key as etcd holds it.
func guarded(ctx context.Context, kv clientv3.KV, key string, cond Cond, op clientv3.Op) (int64, error) {
	resp, err := kv.Txn(ctx).If(cond.Cmp(key)).Then(op).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, fmt.Errorf("txn: %q if %s: %w", key, cond, err)
	}
	if !resp.Succeeded {
		return 0, &ConflictError{Key: key, Current: firstKV(resp), Attempts: 1}
	}
	return resp.Header.Revision, nil
}

func firstKV(resp *clientv3.TxnResponse) *mvccpb.KeyValue {
	if len(resp.Responses) == 0 {
		return nil
	}
	r := resp.Responses[0].GetResponseRange()
	if r == nil || len(r.Kvs) == 0 {
		return nil
	}
	return r.Kvs[0]
}

// CompareAndSwap writes value to key if cond holds, and returns the revision of the
// write. If cond does not hold it writes nothing and returns a *ConflictError (matching
// ErrConflict) with the key as etcd holds it. WithLease attaches the key to a lease.
func CompareAndSwap(ctx context.Context, kv clientv3.KV, key string, cond Cond, value []byte, opts ...Option) (int64, error) {
	return put(ctx, "CompareAndSwap", kv, key, cond, value, opts)
}

func put(ctx context.Context, call string, kv clientv3.KV, key string, cond Cond, value []byte, opts []Option) (int64, error) {
	if err := check(kv, key); err != nil {
		return 0, err
	}
	o, err := newOptions(call, setLease, opts)
	if err != nil {
		return 0, err
	}
	return guarded(ctx, kv, key, cond, clientv3.OpPut(key, string(value), o.putOpts()...))
}

// PutIfAbsent creates key with value unless it exists, and returns the revision of the
// write; an existing key is a *ConflictError (matching ErrConflict) carrying it.
func PutIfAbsent(ctx context.Context, kv clientv3.KV, key string, value []byte, opts ...Option) (int64, error) {
	return put(ctx, "PutIfAbsent", kv, key, Absent(), value, opts)
}

// DeleteIf deletes key if cond holds (ValueIs or ModRevisionIs), and returns the
// revision of the delete; otherwise a *ConflictError (matching ErrConflict). A guard
// that holds on an absent key (ModRevisionIs(0), Absent) succeeds without a delete.
func DeleteIf(ctx context.Context, kv clientv3.KV, key string, cond Cond) (int64, error) {
	if err := check(kv, key); err != nil {
		return 0, err
	}
	return guarded(ctx, kv, key, cond, clientv3.OpDelete(key))
}

// Update is an optimistic read-modify-write of one key. It reads the key, calls fn with
// its value (nil when the key is absent, non-nil otherwise), and writes fn's result only
// if the key has not changed since. On a conflict it pauses (full jitter, growing from
// 2ms to 100ms), re-reads and calls fn again with the newer value, up to WithRetries
// times (default 100). fn returning nil deletes the key; an empty non-nil slice writes
// an empty value. An error from fn stops the loop and is returned wrapped. Update
// returns the revision of the write, or a *ConflictError (matching ErrConflict) after
// the last attempt. A transaction etcd refused before proposing it (too many requests,
// a proposal dropped during an election) is retried like a conflict; a timeout is
// returned as an error, because that write may still be applied. fn may run several
// times and must not have side effects.
func Update(ctx context.Context, kv clientv3.KV, key string, fn func(old []byte) ([]byte, error), opts ...Option) (int64, error) {
	if err := check(kv, key); err != nil {
		return 0, err
	}
	if fn == nil {
		return 0, fmt.Errorf("%w: nil update function", ErrInvalidArgument)
	}
	o, err := newOptions("Update", setRetries|setLease, opts)
	if err != nil {
		return 0, err
	}
	var cur *mvccpb.KeyValue
	for attempt := 1; ; attempt++ {
		get, err := kv.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("txn: update %q: read: %w", key, err)
		}
		cur = nil
		if len(get.Kvs) > 0 {
			cur = get.Kvs[0]
		}
		var old []byte
		var modRev int64
		if cur != nil {
			old, modRev = cur.Value, cur.ModRevision
			if old == nil {
				old = []byte{}
			}
		}
		nv, err := fn(old)
		if err != nil {
			return 0, fmt.Errorf("txn: update %q: %w", key, err)
		}
		op := clientv3.OpDelete(key)
		if nv != nil {
			op = clientv3.OpPut(key, string(nv), o.putOpts()...)
		}
		resp, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
			Then(op).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			if !rejected(err) || attempt > o.retries {
				return 0, fmt.Errorf("txn: update %q: %w", key, err)
			}
			// etcd refused the transaction before proposing it: nothing was written,
			// so trying again cannot apply fn twice.
			if err := pause(ctx, o, attempt); err != nil {
				return 0, fmt.Errorf("txn: update %q: %w", key, err)
			}
			continue
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		cur = firstKV(resp)
		if attempt > o.retries {
			return 0, &ConflictError{Key: key, Current: cur, Attempts: attempt}
		}
		// Contenders collide: pause (jittered, growing) and re-read, so that the next
		// attempt works on a value as fresh as possible.
		if err := pause(ctx, o, attempt); err != nil {
			return 0, fmt.Errorf("txn: update %q: %w", key, err)
		}
	}
}

// pause waits a random time in [0, d), d doubling with each conflict from backoffMin up
// to backoffMax ("full jitter": contenders spread out instead of colliding again).
func pause(ctx context.Context, o options, attempt int) error {
	d := o.backoffMin
	for i := 1; i < attempt && d < o.backoffMax; i++ {
		d *= 2
	}
	d = min(d, o.backoffMax)
	t := time.NewTimer(rand.N(d) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errProposalDropped is raft.ErrProposalDropped's text, as it reaches the client.
const errProposalDropped = "raft proposal dropped"

// rejected reports whether etcd refused a write before proposing it to raft, so that it
// certainly did not happen. Timeouts and lost connections are not: the write may still
// be applied.
func rejected(err error) bool {
	desc := rpctypes.ErrorDesc(err)
	return errors.Is(err, rpctypes.ErrTooManyRequests) ||
		desc == rpctypes.ErrTooManyRequests.Error() ||
		desc == errProposalDropped
}
