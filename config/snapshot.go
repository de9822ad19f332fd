package config

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// SnapshotInfo describes a stored snapshot.
type SnapshotInfo struct {
	Version  int64     `json:"version"`  // 1, 2, 3 ... in the order taken
	Revision int64     `json:"revision"` // the etcd revision the snapshot reflects
	Created  time.Time `json:"created"`
	Keys     int       `json:"keys"`
}

// snapshotDoc is a stored snapshot. Format 2 keeps keys and values as bytes (base64 in
// JSON), so that nothing that is not valid UTF-8 is altered. Format 1 (no "format"
// field) kept them as JSON strings, which replaced invalid UTF-8 with U+FFFD; such
// snapshots are still read and restored as they are.
type snapshotDoc struct {
	SnapshotInfo
	Format  int               `json:"format,omitempty"`
	Entries []snapshotEntry   `json:"entries,omitempty"` // format 2
	Values  map[string]string `json:"values,omitempty"`  // format 1: relative key → value
}

type snapshotEntry struct {
	Key   []byte `json:"key"` // relative to the Store's prefix
	Value []byte `json:"value"`
}

const snapshotFormat = 2

// values returns relative key → stored bytes, whatever the format.
func (d *snapshotDoc) values() (map[string]string, error) {
	switch d.Format {
	case 0, 1:
		return d.Values, nil
	case snapshotFormat:
		out := make(map[string]string, len(d.Entries))
		for _, e := range d.Entries {
			out[string(e.Key)] = string(e.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown snapshot format %d", d.Format)
}

const maxAttempts = 16

func (s *Store) seqKey() string                 { return s.snapPfx + "seq" }
func (s *Store) versionKey(v int64) string      { return s.snapPfx + "v/" + fmt.Sprintf("%020d", v) }
func (s *Store) versionFromKey(k string) string { return strings.TrimPrefix(k, s.snapPfx+"v/") }

// Snapshot stores the current configuration (read from etcd at one revision, not from
// the cache) as the next version and returns it. Keys and values are kept as bytes:
// a value that is not valid UTF-8 (or not JSON) is restored exactly.
func (s *Store) Snapshot(ctx context.Context) (SnapshotInfo, error) {
	for range maxAttempts {
		read, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.seqKey()),
			clientv3.OpGet(s.prefix, clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("config: snapshot: %w", err)
		}
		seqResp, data := read.Responses[0].GetResponseRange(), read.Responses[1].GetResponseRange()
		var seq, seqRev int64
		if len(seqResp.Kvs) > 0 {
			seqRev = seqResp.Kvs[0].ModRevision
			if seq, err = strconv.ParseInt(string(seqResp.Kvs[0].Value), 10, 64); err != nil {
				return SnapshotInfo{}, fmt.Errorf("config: snapshot: bad sequence in %s: %w", s.seqKey(), err)
			}
		}
		doc := snapshotDoc{
			SnapshotInfo: SnapshotInfo{Version: seq + 1, Revision: read.Header.Revision, Created: time.Now().UTC(), Keys: len(data.Kvs)},
			Format:       snapshotFormat,
			Entries:      make([]snapshotEntry, 0, len(data.Kvs)),
		}
		for _, kv := range data.Kvs {
			doc.Entries = append(doc.Entries, snapshotEntry{Key: kv.Key[len(s.prefix):], Value: kv.Value})
		}
		b, err := json.Marshal(doc)
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("config: snapshot: %w", err)
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.seqKey()), "=", seqRev)).
			Then(
				clientv3.OpPut(s.seqKey(), strconv.FormatInt(doc.Version, 10)),
				clientv3.OpPut(s.versionKey(doc.Version), string(b)),
			).Commit()
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("config: snapshot: %w", err)
		}
		if resp.Succeeded {
			return doc.SnapshotInfo, nil
		}
	}
	return SnapshotInfo{}, fmt.Errorf("config: snapshot: %w", ErrConflict)
}

// Snapshots lists the stored snapshots, oldest first.
func (s *Store) Snapshots(ctx context.Context) ([]SnapshotInfo, error) {
	resp, err := s.cli.Get(ctx, s.snapPfx+"v/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("config: list snapshots: %w", err)
	}
	out := make([]SnapshotInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var doc snapshotDoc
		if err := json.Unmarshal(kv.Value, &doc); err != nil {
			return nil, fmt.Errorf("config: snapshot %s: %w", s.versionFromKey(string(kv.Key)), err)
		}
		out = append(out, doc.SnapshotInfo)
	}
	return out, nil
}

// Restore makes the configuration equal to snapshot version, in one etcd transaction:
// every key of the snapshot is written and every other key under the prefix deleted, or
// nothing changes. The transaction is guarded so that a key created or changed
// concurrently makes it start over. One transaction is bounded by etcd's --max-txn-ops
// (128 by default): a snapshot of more keys than that cannot be restored and the attempt
// leaves everything as it was. (Keys to delete are grouped into ranges and cost little.)
func (s *Store) Restore(ctx context.Context, version int64) error {
	got, err := s.cli.Get(ctx, s.versionKey(version))
	if err != nil {
		return fmt.Errorf("config: restore %d: %w", version, err)
	}
	if len(got.Kvs) == 0 {
		return fmt.Errorf("%w: version %d", ErrSnapshotNotFound, version)
	}
	var doc snapshotDoc
	if err := json.Unmarshal(got.Kvs[0].Value, &doc); err != nil {
		return fmt.Errorf("config: restore %d: corrupt snapshot: %w", version, err)
	}
	values, err := doc.values()
	if err != nil {
		return fmt.Errorf("config: restore %d: %w", version, err)
	}
	for range maxAttempts {
		cur, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return fmt.Errorf("config: restore %d: %w", version, err)
		}
		ops := s.deleteOps(cur.Kvs, values)
		for k, v := range values {
			ops = append(ops, clientv3.OpPut(s.prefix+k, v))
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.prefix), "<", cur.Header.Revision+1).WithPrefix()).
			Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("config: restore %d (%d operations): %w", version, len(ops), err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("config: restore %d: %w", version, ErrConflict)
}

// deleteOps deletes the current keys that are not in the snapshot, one range per run of
// such keys with no snapshot key between them, so that large deletions take few
// operations.
func (s *Store) deleteOps(cur []*mvccpb.KeyValue, keep map[string]string) []clientv3.Op {
	all := make([]string, 0, len(cur)+len(keep))
	isCur := map[string]bool{}
	for _, kv := range cur {
		all = append(all, string(kv.Key))
		isCur[string(kv.Key)] = true
	}
	for k := range keep {
		if !isCur[s.prefix+k] {
			all = append(all, s.prefix+k)
		}
	}
	sort.Strings(all)
	var ops []clientv3.Op
	first, last := "", ""
	flush := func() {
		if first == "" {
			return
		}
		if first == last {
			ops = append(ops, clientv3.OpDelete(first))
		} else {
			ops = append(ops, clientv3.OpDelete(first, clientv3.WithRange(last+"\x00")))
		}
		first, last = "", ""
	}
	for _, k := range all {
		if _, kept := keep[strings.TrimPrefix(k, s.prefix)]; kept {
			flush()
			continue
		}
		if first == "" {
			first = k
		}
		last = k
	}
	flush()
	return ops
}

// DeleteSnapshot removes a stored snapshot.
func (s *Store) DeleteSnapshot(ctx context.Context, version int64) error {
	resp, err := s.cli.Delete(ctx, s.versionKey(version))
	if err != nil {
		return fmt.Errorf("config: delete snapshot %d: %w", version, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%w: version %d", ErrSnapshotNotFound, version)
	}
	return nil
}
