package ownership

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Policy decides when a key under a prefix is owned.
type Policy struct {
	// Check runs in the acquire transaction; Held decides from its result whether the
	// key of create revision rev is owned, and returns the first blocking key otherwise.
	Check func() clientv3.Op
	Held  func(rr *pb.RangeResponse, rev int64) (owned bool, holder *mvccpb.KeyValue)
	// Blocker reads what blocks rev; Wait decides from it what to watch for deletion
	// (a key, or every key under a prefix); blocked false means owned.
	Blocker func(rev int64) clientv3.Op
	Wait    func(rr *pb.RangeResponse) (key string, prefix bool, blocked bool)
}

// Predecessor is the policy of a mutex or an election: the oldest key under pfx owns it,
// and a waiter waits only for the key just older than its own.
func Predecessor(pfx string) Policy {
	return Policy{
		Check: func() clientv3.Op { return clientv3.OpGet(pfx, clientv3.WithFirstCreate()...) },
		Held: func(rr *pb.RangeResponse, rev int64) (bool, *mvccpb.KeyValue) {
			if len(rr.Kvs) == 0 || rr.Kvs[0].CreateRevision == rev {
				return true, nil
			}
			return false, rr.Kvs[0]
		},
		Blocker: func(rev int64) clientv3.Op {
			return clientv3.OpGet(pfx, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(rev-1))...)
		},
		Wait: func(rr *pb.RangeResponse) (string, bool, bool) {
			if len(rr.Kvs) == 0 {
				return "", false, false
			}
			return string(rr.Kvs[0].Key), false, true
		},
	}
}

// Semaphore is the policy of n permits: a key is owned while fewer than n keys under pfx
// are older; a waiter wakes on any delete under pfx.
func Semaphore(pfx string, n int) Policy {
	return Policy{
		Check: func() clientv3.Op {
			return clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(int64(n)))
		},
		Held: func(rr *pb.RangeResponse, rev int64) (bool, *mvccpb.KeyValue) {
			for _, kv := range rr.Kvs {
				if kv.CreateRevision == rev {
					return true, nil
				}
			}
			if len(rr.Kvs) == 0 {
				return true, nil
			}
			return false, rr.Kvs[0]
		},
		Blocker: func(rev int64) clientv3.Op {
			return clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMaxCreateRev(rev-1))
		},
		Wait: func(rr *pb.RangeResponse) (string, bool, bool) {
			return pfx, true, len(rr.Kvs) >= n
		},
	}
}

// ReadWrite is the policy of a readers-writer lock with writer preference: writers'
// keys live under pfx+"w/", readers' under pfx+"r/". A writer owns the lock when no older
// key of either kind exists; a reader when no older writer exists, so readers that
// arrive after a waiting writer queue behind it.
func ReadWrite(pfx string, writer bool) Policy {
	if writer {
		return Predecessor(pfx)
	}
	wpfx := pfx + "w/"
	return Policy{
		Check: func() clientv3.Op { return clientv3.OpGet(wpfx, clientv3.WithFirstCreate()...) },
		Held: func(rr *pb.RangeResponse, rev int64) (bool, *mvccpb.KeyValue) {
			if len(rr.Kvs) == 0 || rr.Kvs[0].CreateRevision > rev {
				return true, nil
			}
			return false, rr.Kvs[0]
		},
		Blocker: func(rev int64) clientv3.Op {
			return clientv3.OpGet(wpfx, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(rev-1))...)
		},
		Wait: Predecessor(wpfx).Wait,
	}
}
