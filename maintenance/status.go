package maintenance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// dbStatus is what `etcdutl snapshot status` reports of an etcd database.
type dbStatus struct {
	Revision int64
	Keys     int
	Size     int64
	Hash     uint32
}

// keyBucket is etcd's bucket of key revisions: a key is a revision (8 bytes main,
// '_', 8 bytes sub, big-endian), with a trailing 't' for a deletion, and a value an
// mvccpb.KeyValue.
var keyBucket = []byte("key")

// statusOf reads the etcd database at path as `etcdutl snapshot status` does, to the
// same hash: bbolt's consistency check, then a CRC-32C over every bucket's name, keys
// and values, counting the keys alive at the last revision. The caller has checked the
// file's size against its meta pages (checkBoltSize).
func statusOf(path string) (st dbStatus, err error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		return st, err
	}
	defer db.Close()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	alive := map[string]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			return fmt.Errorf("integrity check failed, %d errors: %w", len(errs), errors.Join(errs...))
		}
		st.Size = tx.Size()
		c := tx.Cursor()
		for name, _ := c.First(); name != nil; name, _ = c.Next() {
			b := tx.Bucket(name)
			if b == nil {
				return fmt.Errorf("%q is not a bucket", name)
			}
			h.Write(name)
			isKey := bytes.Equal(name, keyBucket)
			err := b.ForEach(func(k, v []byte) error {
				h.Write(k)
				h.Write(v)
				if !isKey {
					return nil
				}
				if (len(k) != 17 && len(k) != 18) || k[8] != '_' {
					return fmt.Errorf("bucket %q: invalid revision key %q", name, k)
				}
				st.Revision = int64(binary.BigEndian.Uint64(k))
				var kv mvccpb.KeyValue
				if err := proto.Unmarshal(v, &kv); err != nil {
					return fmt.Errorf("bucket %q: revision %d: %w", name, st.Revision, err)
				}
				if len(k) == 18 && k[17] == 't' {
					delete(alive, string(kv.Key))
				} else {
					alive[string(kv.Key)] = true
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	st.Keys = len(alive)
	st.Hash = h.Sum32()
	return st, err
}
