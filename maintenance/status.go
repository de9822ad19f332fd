package maintenance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"

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
// file's size against its meta pages (checkBoltSize). The pages are checked first
// (checkPages): bbolt's check runs in goroutines of its own, where a page that points
// outside the file, at itself or at a page of the wrong kind would fault or overflow the
// stack of the whole process rather than fail the check.
func statusOf(path string) (st dbStatus, err error) {
	if err := checkPages(path); err != nil {
		return st, err
	}
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

// The bbolt file format, as far as checkPages reads it.
const (
	pageHeader     = 16 // id (8), flags (2), count (2), overflow (4)
	elementSize    = 16 // branch: pos, ksize (4 each), page (8); leaf: flags, pos, ksize, vsize (4 each)
	bucketHeader   = 16 // root page (8), sequence (8)
	metaChecksumAt = 56 // within the meta, after the page header
	branchPage     = 0x01
	leafPage       = 0x02
	freelistPage   = 0x10
	bucketLeaf     = 0x01
	noFreelist     = ^uint64(0)
)

// checkPages walks the page tree of the bbolt database at path from each valid meta
// page, reading the file rather than mapping it, and returns an error for the first
// page bbolt could not read safely: out of the file, referenced twice, of the wrong kind
// or with elements beyond its end; and for a freelist page that runs past its end. A
// database it accepts may still fail bbolt's check (keys out of order, unreachable pages),
// which reports that as an error.
func checkPages(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, pageHeader+metaChecksumAt+8)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("meta page 0: %w", err)
	}
	pageSize := int64(binary.LittleEndian.Uint32(hdr[pageHeader+8:]))
	if pageSize < 512 || pageSize > 1<<20 {
		return fmt.Errorf("page size %d", pageSize)
	}
	w := &pageWalk{f: f, pageSize: pageSize}
	metas := 0
	for _, off := range []int64{0, pageSize} {
		if _, err := f.ReadAt(hdr, off); err != nil {
			continue
		}
		meta := hdr[pageHeader:]
		h := fnv.New64a()
		h.Write(meta[:metaChecksumAt])
		if binary.LittleEndian.Uint32(meta) != boltMagic || binary.LittleEndian.Uint64(meta[metaChecksumAt:]) != h.Sum64() ||
			int64(binary.LittleEndian.Uint32(meta[8:])) != pageSize {
			continue // bbolt does not use it either
		}
		metas++
		w.hwm = binary.LittleEndian.Uint64(meta[40:])
		w.seen = map[uint64]bool{}
		if err := w.bucket(meta[16:32]); err != nil {
			return fmt.Errorf("meta page %d: %w", off/pageSize, err)
		}
		if fl := binary.LittleEndian.Uint64(meta[32:]); fl != noFreelist {
			if err := w.freelist(fl); err != nil {
				return fmt.Errorf("meta page %d: %w", off/pageSize, err)
			}
		}
	}
	if metas == 0 {
		return errors.New("no valid meta page")
	}
	return nil
}

// pageWalk reads the pages of one meta page's tree, each once.
type pageWalk struct {
	f        io.ReaderAt
	pageSize int64
	hwm      uint64 // the pages in use are below it
	seen     map[uint64]bool
}

// page reads page id with its overflow, checking that it lies below the high-water
// mark, is referenced once and is of kind flags.
func (w *pageWalk) page(id uint64, flags uint16) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("page %d: out of bounds (%d pages)", id, w.hwm)
	}
	hdr := make([]byte, pageHeader)
	if _, err := w.f.ReadAt(hdr, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	switch {
	case binary.LittleEndian.Uint64(hdr) != id:
		return nil, fmt.Errorf("page %d: its header says page %d", id, binary.LittleEndian.Uint64(hdr))
	case binary.LittleEndian.Uint16(hdr[8:]) != flags:
		return nil, fmt.Errorf("page %d: flags %#x, want %#x", id, binary.LittleEndian.Uint16(hdr[8:]), flags)
	case id+overflow >= w.hwm:
		return nil, fmt.Errorf("page %d: %d overflow pages run out of bounds (%d pages)", id, overflow, w.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return nil, fmt.Errorf("page %d: multiple references", i)
		}
		w.seen[i] = true
	}
	p := make([]byte, int64(overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(p, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return p, nil
}

// bucket checks the tree of a bucket whose value is v: a header, and an inline leaf
// page after it when its root page is 0.
func (w *pageWalk) bucket(v []byte) error {
	if len(v) < bucketHeader {
		return fmt.Errorf("bucket value of %d bytes", len(v))
	}
	root := binary.LittleEndian.Uint64(v)
	if root != 0 {
		return w.tree(root)
	}
	p := v[bucketHeader:]
	if len(p) < pageHeader || binary.LittleEndian.Uint16(p[8:]) != leafPage {
		return errors.New("inline bucket without a leaf page")
	}
	return w.leaf(p)
}

// tree checks the pages under page id, depth first without recursion on branch pages.
func (w *pageWalk) tree(root uint64) error {
	stack := []uint64{root}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if id < 2 || id >= w.hwm {
			return fmt.Errorf("page %d: out of bounds (%d pages)", id, w.hwm)
		}
		hdr := make([]byte, pageHeader)
		if _, err := w.f.ReadAt(hdr, int64(id)*w.pageSize); err != nil {
			return fmt.Errorf("page %d: %w", id, err)
		}
		flags := binary.LittleEndian.Uint16(hdr[8:])
		if flags != branchPage && flags != leafPage {
			return fmt.Errorf("page %d: flags %#x, not a branch or leaf page", id, flags)
		}
		p, err := w.page(id, flags)
		if err != nil {
			return err
		}
		if flags == leafPage {
			if err := w.leaf(p); err != nil {
				return fmt.Errorf("page %d: %w", id, err)
			}
			continue
		}
		elems, err := elements(p)
		if err != nil {
			return fmt.Errorf("page %d: %w", id, err)
		}
		for _, e := range elems {
			pos, ksize := uint64(binary.LittleEndian.Uint32(e)), uint64(binary.LittleEndian.Uint32(e[4:]))
			if off := uint64(len(p)) - uint64(len(e)); off+pos+ksize > uint64(len(p)) {
				return fmt.Errorf("page %d: a key runs past the page", id)
			}
			stack = append(stack, binary.LittleEndian.Uint64(e[8:]))
		}
	}
	return nil
}

// leaf checks that the keys and values of leaf page p lie within it, and the trees of
// the buckets among them.
func (w *pageWalk) leaf(p []byte) error {
	elems, err := elements(p)
	if err != nil {
		return err
	}
	for _, e := range elems {
		flags := binary.LittleEndian.Uint32(e)
		pos, ksize, vsize := uint64(binary.LittleEndian.Uint32(e[4:])), uint64(binary.LittleEndian.Uint32(e[8:])), uint64(binary.LittleEndian.Uint32(e[12:]))
		off := uint64(len(p)) - uint64(len(e))
		end := off + pos + ksize + vsize
		if end > uint64(len(p)) {
			return errors.New("a key or value runs past the page")
		}
		if flags&bucketLeaf != 0 {
			if err := w.bucket(p[off+pos+ksize : end]); err != nil {
				return err
			}
		}
	}
	return nil
}

// elements returns the elements of page p, each from its start to the end of the page
// (an element's positions count from its own start).
func elements(p []byte) ([][]byte, error) {
	n := int(binary.LittleEndian.Uint16(p[10:]))
	if pageHeader+n*elementSize > len(p) {
		return nil, fmt.Errorf("%d elements do not fit the page", n)
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = p[pageHeader+i*elementSize:]
	}
	return out, nil
}

// freelist checks that the freelist page id and the page ids it lists lie within it.
func (w *pageWalk) freelist(id uint64) error {
	p, err := w.page(id, freelistPage)
	if err != nil {
		return err
	}
	n, first := uint64(binary.LittleEndian.Uint16(p[10:])), uint64(0)
	if n == 0xFFFF {
		n, first = binary.LittleEndian.Uint64(p[pageHeader:]), 1
	}
	if room := uint64(len(p)-pageHeader) / 8; n > room || first+n > room {
		return fmt.Errorf("freelist page %d: %d ids do not fit it", id, n)
	}
	return nil
}
