package maintenance

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// goodDB is a real snapshot's database, its trailer cut off.
func goodDB(t *testing.T) []byte {
	t.Helper()
	cli := etcdtest.Client(t)
	m, err := New(cli)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = m.Snapshot(etcdtest.Context(t, 30*time.Second), &buf, SnapshotRequest{})
	require.NoError(t, err)
	return bytes.Clone(buf.Bytes()[:buf.Len()-sha256.Size])
}

// setBucketRoots sets, in the root page of each meta page, the root page of bucket
// name to root.
func setBucketRoots(t *testing.T, db []byte, name string, root uint64) {
	t.Helper()
	pageSize := int(binary.LittleEndian.Uint32(db[16+8:]))
	n := 0
	for _, meta := range []int{0, pageSize} {
		rootPage := int(binary.LittleEndian.Uint64(db[meta+16+16:]))
		p := db[rootPage*pageSize:]
		count := int(binary.LittleEndian.Uint16(p[10:]))
		for i := range count {
			e := 16 + i*16
			pos := int(binary.LittleEndian.Uint32(p[e+4:]))
			ksize := int(binary.LittleEndian.Uint32(p[e+8:]))
			k := p[e+pos : e+pos+ksize]
			if string(k) == name {
				binary.LittleEndian.PutUint64(p[e+pos+ksize:], root)
				n++
			}
		}
	}
	require.NotZero(t, n, "bucket %q found", name)
}

// A database whose pages point far outside the file fails verification with
// ErrVerify: the process neither faults nor hangs.
func TestVerifyHostileDatabase(t *testing.T) {
	good := goodDB(t)
	m := &Maintainer{opts: defaults()}
	pageSize := binary.LittleEndian.Uint32(good[16+8:])
	rootPage := binary.LittleEndian.Uint64(good[pageSize+16+16:])
	for _, tc := range []struct {
		name string
		root uint64
	}{
		{"past the file", 1 << 28},
		{"a meta page", 1},
		{"the page that holds it", rootPage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := bytes.Clone(good)
			setBucketRoots(t, db, "key", tc.root)
			path := filepath.Join(t.TempDir(), "hostile.db")
			require.NoError(t, os.WriteFile(path, db, 0o600))
			assert.ErrorIs(t, m.verify(path, &SnapshotReport{}), ErrVerify)
		})
	}
}

// checkPages accepts a sound database with branch, overflow and freelist pages, nested
// and inline buckets, as bbolt's check does.
func TestCheckPagesAcceptsSoundDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sound.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	for round := range 3 {
		require.NoError(t, db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("big"))
			if err != nil {
				return err
			}
			for i := range 3000 {
				if err := b.Put(fmt.Appendf(nil, "k%06d", i), bytes.Repeat([]byte{byte(round)}, 100)); err != nil {
					return err
				}
			}
			if err := b.Put([]byte("overflow"), bytes.Repeat([]byte{1}, 20000)); err != nil {
				return err
			}
			nested, err := b.CreateBucketIfNotExists([]byte("nested"))
			if err != nil {
				return err
			}
			inline, err := nested.CreateBucketIfNotExists([]byte("inline"))
			if err != nil {
				return err
			}
			return inline.Put([]byte("a"), []byte("b"))
		}))
	}
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { // frees pages
		b := tx.Bucket([]byte("big"))
		for i := range 1500 {
			if err := b.Delete(fmt.Appendf(nil, "k%06d", i)); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())
	require.NoError(t, checkPages(path))
	_, err = statusOf(path)
	require.NoError(t, err)
}
