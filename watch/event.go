package watch

import (
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// EventType says what an Event is.
type EventType int

const (
	// Put: a key was created or updated.
	Put EventType = iota + 1
	// Delete: a key was deleted.
	Delete
	// Resync: the Watcher lost track (its resume revision was compacted) and re-listed;
	// Event.State is the full current state and replaces whatever the consumer held.
	Resync
)

func (t EventType) String() string {
	switch t {
	case Put:
		return "PUT"
	case Delete:
		return "DELETE"
	case Resync:
		return "RESYNC"
	default:
		return fmt.Sprintf("EventType(%d)", int(t))
	}
}

// KV is a key and its value at a revision. Value is shared with other holders of the
// same KV and must not be modified.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
	Version        int64
	Lease          int64
}

// Event is one change seen by a Watcher.
type Event struct {
	Type EventType
	// KV is the key of a Put or Delete. For a Delete, Value is empty and ModRevision is
	// the revision of the delete.
	KV KV
	// PrevKV is the key before the change, when WithPrevKV is set and etcd still had it.
	PrevKV *KV
	// State is, for a Resync only, every key under the watched key or prefix, sorted by
	// key.
	State []KV
	// Revision is the store revision of the change; for a Resync, the revision of the list.
	Revision int64
}

func fromPB(kv *mvccpb.KeyValue) KV {
	return KV{
		Key:            string(kv.Key),
		Value:          kv.Value,
		CreateRevision: kv.CreateRevision,
		ModRevision:    kv.ModRevision,
		Version:        kv.Version,
		Lease:          kv.Lease,
	}
}
