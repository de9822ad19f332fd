package maintenance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// SnapshotRequest describes one snapshot.
type SnapshotRequest struct {
	// Member is the member to take the snapshot from. Default: a reachable follower
	// that is not partitioned (a snapshot loads the member that sends it), else the
	// leader.
	Member health.ID `json:"member,omitempty"`
	// TempDir is where Snapshot spools the stream to verify it. Default os.TempDir().
	TempDir string `json:"tempDir,omitempty"`
	DryRun  bool   `json:"dryRun,omitempty"`
}

// SnapshotReport is the outcome of a snapshot.
type SnapshotReport struct {
	DryRun     bool      `json:"dryRun"`
	Plan       []Step    `json:"plan"`
	MemberID   health.ID `json:"memberID"`
	MemberName string    `json:"memberName"`
	// Path is the file written by SnapshotFile.
	Path string `json:"path,omitempty"`
	// Version is the storage version the member reports for the snapshot.
	Version string `json:"version,omitempty"`
	// Size is the number of bytes written, SHA-256 trailer included.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the database, as the trailer carries it.
	SHA256 string `json:"sha256"`
	// Revision, Keys, DBSize and Hash are what etcd's own snapshot status reads from the
	// verified file: the latest revision, the number of live keys, the bolt database
	// size and its CRC-32 hash.
	Revision int64         `json:"revision"`
	Keys     int           `json:"keys"`
	DBSize   int64         `json:"dbSize"`
	Hash     uint32        `json:"hash"`
	Duration time.Duration `json:"duration"`
}

// Snapshot streams a snapshot of one member's database to w and verifies it: the
// SHA-256 trailer etcd appends must match the data, and etcd's snapshot code
// (etcdutl's status, which runs bbolt's consistency check) must read it. It spools a
// copy to a temporary file for that check and removes it before returning. On any error
// the bytes already written to w are not a usable snapshot and must be discarded; an
// error from the check matches ErrVerify.
func (m *Maintainer) Snapshot(ctx context.Context, w io.Writer, req SnapshotRequest) (*SnapshotReport, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: nil writer", ErrInvalidArgument)
	}
	start := time.Now()
	rep, src, err := m.planSnapshot(ctx, req, "")
	if err != nil || req.DryRun {
		rep.Duration = since(start)
		return rep, err
	}
	f, err := os.CreateTemp(req.TempDir, "etcd-snapshot-*.db")
	if err != nil {
		return nil, fmt.Errorf("maintenance: snapshot spool: %w", err)
	}
	defer os.Remove(f.Name())
	err = m.stream(ctx, src, io.MultiWriter(w, f), rep)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("maintenance: snapshot spool: %w", cerr)
	}
	if err == nil {
		err = m.verify(f.Name(), rep)
	}
	rep.Duration = since(start)
	return rep, err
}

// SnapshotFile writes a verified snapshot (see Snapshot) to path. It writes path +
// ".part" first, syncs it, verifies it and only then renames it to path, so path is
// either a verified snapshot or absent; it refuses to overwrite an existing path.
func (m *Maintainer) SnapshotFile(ctx context.Context, path string, req SnapshotRequest) (*SnapshotReport, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty snapshot path", ErrInvalidArgument)
	}
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%w: %s exists; choose another path", ErrInvalidArgument, path)
	}
	start := time.Now()
	rep, src, err := m.planSnapshot(ctx, req, path)
	if err != nil || req.DryRun {
		rep.Duration = since(start)
		return rep, err
	}
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("maintenance: snapshot file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(part)
		}
	}()
	err = m.stream(ctx, src, f, rep)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = m.verify(part, rep)
	}
	if err == nil {
		err = publish(part, path)
	}
	rep.Duration = since(start)
	if err != nil {
		return rep, err
	}
	ok = true
	rep.Path = path
	m.opts.logger.Info("snapshot saved", zap.String("path", path), zap.Int64("revision", rep.Revision), zap.Int("keys", rep.Keys), zap.Int64("size", rep.Size))
	return rep, nil
}

// publish moves the verified part file to path without replacing a file that appeared
// there meanwhile: a hard link fails if path exists. Where hard links are not supported
// it falls back to a rename.
func publish(part, path string) error {
	err := os.Link(part, path)
	switch {
	case err == nil:
		return os.Remove(part)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %s exists; choose another path", ErrInvalidArgument, path)
	}
	return os.Rename(part, path)
}

func (m *Maintainer) planSnapshot(ctx context.Context, req SnapshotRequest, path string) (*SnapshotReport, health.MemberStatus, error) {
	rep := &SnapshotReport{DryRun: req.DryRun, Plan: []Step{}}
	r, err := m.check(ctx)
	if err != nil {
		return rep, health.MemberStatus{}, err
	}
	src, err := snapshotSource(r, req.Member)
	if err != nil {
		return rep, src, err
	}
	rep.MemberID, rep.MemberName = src.Member.ID, src.Name
	dst := "the writer"
	if path != "" {
		dst = path
	}
	rep.Plan = append(rep.Plan, Step{Action: "snapshot", MemberID: src.Member.ID, Member: src.Name,
		Detail: fmt.Sprintf("about %d bytes to %s, then verify", src.DBSize, dst)})
	return rep, src, nil
}

func snapshotSource(r *health.Report, id health.ID) (health.MemberStatus, error) {
	if id != 0 {
		ms, err := find(r, id)
		if err != nil {
			return ms, err
		}
		if !ms.Reachable {
			return ms, fmt.Errorf("%w: %s (%x) is unreachable: %s", ErrUnhealthy, ms.Name, id, ms.Error)
		}
		return ms, nil
	}
	partitioned := map[health.ID]bool{}
	for _, p := range r.Partition.Members {
		partitioned[p.ID] = true
	}
	var leader *health.MemberStatus
	for i := range r.Members {
		ms := &r.Members[i]
		if !ms.Reachable || partitioned[ms.Member.ID] {
			continue
		}
		if ms.Member.ID != r.Leader.ID && !ms.Member.IsLearner {
			return *ms, nil
		}
		if ms.Member.ID == r.Leader.ID {
			leader = ms
		}
	}
	if leader != nil {
		return *leader, nil
	}
	return health.MemberStatus{}, fmt.Errorf("%w: no reachable member to take a snapshot from", ErrUnhealthy)
}

// stream copies the member's snapshot to w and checks its SHA-256 trailer.
func (m *Maintainer) stream(ctx context.Context, src health.MemberStatus, w io.Writer, rep *SnapshotReport) error {
	conn, err := m.cli.Dial(src.Endpoint)
	if err != nil {
		return fmt.Errorf("maintenance: dial %s: %w", src.Name, err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mc := clientv3.NewMaintenanceFromMaintenanceClient(pb.NewMaintenanceClient(conn), m.cli)
	resp, err := mc.SnapshotWithVersion(sctx)
	if err != nil {
		return fmt.Errorf("maintenance: snapshot of %s: %w", src.Name, err)
	}
	defer resp.Snapshot.Close()
	rep.Version = resp.Version
	m.opts.logger.Info("streaming snapshot", zap.String("member", src.Name), zap.String("version", resp.Version))
	tw := &trailerWriter{h: sha256.New()}
	n, err := io.Copy(io.MultiWriter(w, tw), resp.Snapshot)
	rep.Size = n
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("maintenance: snapshot of %s: %w", src.Name, err)
	}
	sum, err := tw.check(n)
	if err != nil {
		return err
	}
	rep.SHA256 = sum
	return nil
}

// verify reads the file as etcdutl's snapshot status does: bbolt's consistency check and
// a walk of every bucket. bbolt reads the file through a memory map, so a database cut short
// would fault the process: its size is checked against what its meta pages claim first,
// and a fault that still happens is turned into an error.
func (m *Maintainer) verify(path string, rep *SnapshotReport) (err error) {
	if err := checkBoltSize(path); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: reading the database faulted: %v", ErrVerify, p)
		}
	}()
	st, err := statusOf(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	rep.Revision, rep.Keys, rep.DBSize, rep.Hash = st.Revision, st.Keys, st.Size, st.Hash
	return nil
}

// check returns the hex SHA-256 of the n bytes written, trailer excluded, or an error
// matching ErrVerify when they do not end in a trailer that matches them. etcd appends
// the trailer to a database whose size is a multiple of 512.
func (t *trailerWriter) check(n int64) (string, error) {
	if len(t.tail) != sha256.Size || (n-sha256.Size)%512 != 0 {
		return "", fmt.Errorf("%w: %d bytes do not end in a SHA-256 trailer", ErrVerify, n)
	}
	sum := t.h.Sum(nil)
	if !bytes.Equal(sum, t.tail) {
		return "", fmt.Errorf("%w: SHA-256 of the data is %x, the trailer says %x", ErrVerify, sum, t.tail)
	}
	return hex.EncodeToString(sum), nil
}

// boltMagic marks a bbolt meta page.
const boltMagic = 0xED0CDAED

// checkBoltSize returns an error matching ErrVerify when the bbolt database at path is
// shorter than its valid meta pages say it is (its high-water page times the page
// size). A meta page sits after a 16-byte page header: magic, version, page size,
// flags (4 bytes each), the root bucket (16), the freelist page (8), the high-water
// page (8).
func checkBoltSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	size := st.Size()
	valid := 0
	hdr := make([]byte, 16+48)
	for _, off := range []int64{0, -1} {
		if off < 0 { // the second meta page is one page in
			if _, err := f.ReadAt(hdr, 0); err != nil {
				break
			}
			off = int64(binary.LittleEndian.Uint32(hdr[16+8:]))
		}
		if _, err := f.ReadAt(hdr, off); err != nil {
			continue
		}
		meta := hdr[16:]
		if binary.LittleEndian.Uint32(meta) != boltMagic {
			continue
		}
		valid++
		pageSize := int64(binary.LittleEndian.Uint32(meta[8:]))
		pages := binary.LittleEndian.Uint64(meta[40:])
		if pageSize <= 0 || pages > uint64(size) || int64(pages)*pageSize > size {
			return fmt.Errorf("%w: the database claims %d pages of %d bytes, the file has %d bytes", ErrVerify, pages, pageSize, size)
		}
	}
	if valid == 0 {
		return fmt.Errorf("%w: no bbolt meta page", ErrVerify)
	}
	return nil
}

// trailerWriter hashes everything written to it except the last sha256.Size bytes,
// which it keeps in tail.
type trailerWriter struct {
	h    hash.Hash
	tail []byte
}

func (t *trailerWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= sha256.Size {
		t.h.Write(t.tail)
		t.h.Write(p[:len(p)-sha256.Size])
		t.tail = append(t.tail[:0], p[len(p)-sha256.Size:]...)
		return n, nil
	}
	buf := append(t.tail, p...)
	if over := len(buf) - sha256.Size; over > 0 {
		t.h.Write(buf[:over])
		buf = buf[over:]
	}
	t.tail = append([]byte(nil), buf...)
	return n, nil
}
