package txn

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Batch is a set of writes applied in one transaction, all or none, when all its guards
// hold. The zero value is an empty batch ready to use. A Batch is not safe for
// concurrent use.
//
//	var b txn.Batch
//	b.If("/a", txn.ValueIs([]byte("1"))).If("/b", txn.Absent())
//	b.Put("/b", []byte("2")).Delete("/a")
//	rev, err := b.Commit(ctx, cli)
type Batch struct {
	guards []clientv3.Cmp
	ops    []clientv3.Op
	err    error
}

// If adds a guard: the batch applies only if cond holds on key.
func (b *Batch) If(key string, cond Cond) *Batch {
	if key == "" {
		b.fail(ErrEmptyKey)
		return b
	}
	b.guards = append(b.guards, cond.Cmp(key))
	return b
}

// IfCmp adds raw etcd comparisons as guards.
func (b *Batch) IfCmp(cmps ...clientv3.Cmp) *Batch {
	b.guards = append(b.guards, cmps...)
	return b
}

// Put adds a write of value to key.
func (b *Batch) Put(key string, value []byte, opts ...clientv3.OpOption) *Batch {
	if key == "" {
		b.fail(ErrEmptyKey)
		return b
	}
	b.ops = append(b.ops, clientv3.OpPut(key, string(value), opts...))
	return b
}

// Delete adds a delete of key (with clientv3.WithPrefix, of a range).
func (b *Batch) Delete(key string, opts ...clientv3.OpOption) *Batch {
	if key == "" {
		b.fail(ErrEmptyKey)
		return b
	}
	b.ops = append(b.ops, clientv3.OpDelete(key, opts...))
	return b
}

// Op adds raw etcd operations.
func (b *Batch) Op(ops ...clientv3.Op) *Batch {
	b.ops = append(b.ops, ops...)
	return b
}

func (b *Batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Commit applies the batch in one transaction and returns its revision. If a guard
// fails nothing is written and the error matches ErrConflict. etcd refuses a batch that
// writes the same key twice.
func (b *Batch) Commit(ctx context.Context, kv clientv3.KV) (int64, error) {
	if kv == nil {
		return 0, ErrNilClient
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(b.ops) == 0 {
		return 0, ErrEmptyBatch
	}
	resp, err := kv.Txn(ctx).If(b.guards...).Then(b.ops...).Commit()
	if err != nil {
		return 0, fmt.Errorf("txn: batch of %d ops: %w", len(b.ops), err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: batch guard failed", ErrConflict)
	}
	return resp.Header.Revision, nil
}
