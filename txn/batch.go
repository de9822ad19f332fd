package txn

import (
	"bytes"
	"cmp"
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
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
		b.fail(fmt.Errorf("%w: empty key", ErrInvalidArgument))
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
		b.fail(fmt.Errorf("%w: empty key", ErrInvalidArgument))
		return b
	}
	b.ops = append(b.ops, clientv3.OpPut(key, string(value), opts...))
	return b
}

// Delete adds a delete of key (with clientv3.WithPrefix, of a range).
func (b *Batch) Delete(key string, opts ...clientv3.OpOption) *Batch {
	if key == "" {
		b.fail(fmt.Errorf("%w: empty key", ErrInvalidArgument))
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
// fails nothing is written and the error is a *ConflictError (matching ErrConflict)
// naming the first guard that failed and what etcd held there; the guarded keys are
// read in the same transaction (only when a guard fails; a range guard reads its whole
// range), so that answer is exact. etcd refuses a batch that writes the same key twice.
func (b *Batch) Commit(ctx context.Context, kv clientv3.KV) (int64, error) {
	if kv == nil {
		return 0, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(b.ops) == 0 {
		return 0, ErrEmptyBatch
	}
	reads := make([]clientv3.Op, len(b.guards))
	for i := range b.guards {
		g := b.guards[i].GetCompare()
		var opts []clientv3.OpOption
		if len(g.RangeEnd) > 0 {
			opts = append(opts, clientv3.WithRange(string(g.RangeEnd)))
		}
		reads[i] = clientv3.OpGet(string(g.Key), opts...)
	}
	resp, err := kv.Txn(ctx).If(b.guards...).Then(b.ops...).Else(reads...).Commit()
	if err != nil {
		return 0, fmt.Errorf("txn: batch of %d ops: %w", len(b.ops), err)
	}
	if !resp.Succeeded {
		return 0, b.conflict(resp)
	}
	return resp.Header.Revision, nil
}

// conflict finds the first guard that failed, evaluating each as etcd does against the
// keys read in the same transaction.
func (b *Batch) conflict(resp *clientv3.TxnResponse) *ConflictError {
	for i := range b.guards {
		if i >= len(resp.Responses) {
			break
		}
		g := b.guards[i].GetCompare()
		kvs := resp.Responses[i].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			// etcd fails a value comparison on a missing key, and compares every other
			// target with zero.
			if g.Target == etcdserverpb.Compare_VALUE || !compare(g, &mvccpb.KeyValue{}) {
				return &ConflictError{Key: string(g.Key), Attempts: 1}
			}
			continue
		}
		for _, kv := range kvs {
			if !compare(g, kv) {
				return &ConflictError{Key: string(kv.Key), Current: kv, Attempts: 1}
			}
		}
	}
	// Not reached while etcd and compare agree; still a conflict.
	ce := &ConflictError{Attempts: 1}
	if len(b.guards) > 0 {
		ce.Key = string(b.guards[0].KeyBytes())
	}
	return ce
}

// compare evaluates one comparison on one key as etcd does (see etcd's compareKV).
func compare(c *etcdserverpb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case etcdserverpb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case etcdserverpb.Compare_CREATE:
		result = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case etcdserverpb.Compare_MOD:
		result = cmp.Compare(kv.ModRevision, c.GetModRevision())
	case etcdserverpb.Compare_VERSION:
		result = cmp.Compare(kv.Version, c.GetVersion())
	case etcdserverpb.Compare_LEASE:
		result = cmp.Compare(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case etcdserverpb.Compare_EQUAL:
		return result == 0
	case etcdserverpb.Compare_NOT_EQUAL:
		return result != 0
	case etcdserverpb.Compare_GREATER:
		return result > 0
	case etcdserverpb.Compare_LESS:
		return result < 0
	}
	return false
}
