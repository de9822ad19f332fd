package maintenance

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func TestTrailerWriterSplitsAnyChunking(t *testing.T) {
	for range 200 {
		data := make([]byte, mrand.IntN(300))
		rand.Read(data)
		tw := &trailerWriter{h: sha256.New()}
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+mrand.IntN(70))
			tw.Write(rest[:n])
			rest = rest[n:]
		}
		if len(data) < sha256.Size {
			assert.True(t, bytes.Equal(data, tw.tail))
			continue
		}
		body := data[:len(data)-sha256.Size]
		want := sha256.Sum256(body)
		assert.Equal(t, want[:], tw.h.Sum(nil))
		assert.Equal(t, data[len(body):], tw.tail)
	}
}

func TestVerifyRejectsAFileThatIsNotADatabase(t *testing.T) {
	m := &Maintainer{opts: defaults()}
	m.opts.logger = zap.NewNop()
	path := filepath.Join(t.TempDir(), "junk.db")
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte{7}, 4096+sha256.Size), 0o600))
	err := m.verify(path, &SnapshotReport{})
	require.ErrorIs(t, err, ErrVerify)
}

// A real snapshot passes both checks; a flipped byte fails the trailer check, a
// truncated file fails it too, and a database cut short fails etcd's integrity check.
func TestSnapshotChecksCatchCorruption(t *testing.T) {
	cli := etcdtest.Client(t)
	m, err := New(cli)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = m.Snapshot(etcdtest.Context(t, 30*time.Second), &buf, SnapshotRequest{})
	require.NoError(t, err)
	good := buf.Bytes()

	feed := func(data []byte) (string, error) {
		tw := &trailerWriter{h: sha256.New()}
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1000)
			tw.Write(rest[:n])
			rest = rest[n:]
		}
		return tw.check(int64(len(data)))
	}
	sum, err := feed(good)
	require.NoError(t, err)
	want := sha256.Sum256(good[:len(good)-sha256.Size])
	assert.Equal(t, hex.EncodeToString(want[:]), sum)

	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	_, err = feed(flipped)
	assert.ErrorIs(t, err, ErrVerify, "a flipped byte")
	_, err = feed(good[:len(good)-100])
	assert.ErrorIs(t, err, ErrVerify, "a truncated stream")

	// A database with a valid trailer of its own but cut short: bbolt's check fails.
	db := good[:len(good)-sha256.Size]
	cut := db[:len(db)/2/4096*4096]
	sumCut := sha256.Sum256(cut)
	path := filepath.Join(t.TempDir(), "cut.db")
	require.NoError(t, os.WriteFile(path, append(bytes.Clone(cut), sumCut[:]...), 0o600))
	_, err = feed(append(bytes.Clone(cut), sumCut[:]...))
	require.NoError(t, err, "the trailer matches what is there")
	assert.ErrorIs(t, m.verify(path, &SnapshotReport{}), ErrVerify, "etcd's integrity check does not")
}

// The status of a snapshot is etcdutl's, to the hash, with keys deleted and rewritten.
func TestStatusIsEtcdutls(t *testing.T) {
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	for i := range 30 {
		_, err := cli.Put(ctx, fmt.Sprintf("%s%d", p, i%10), fmt.Sprint(i))
		require.NoError(t, err)
	}
	_, err := cli.Delete(ctx, p+"3")
	require.NoError(t, err)
	m, err := New(cli)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(path)
	require.NoError(t, err)
	rep, err := m.Snapshot(ctx, f, SnapshotRequest{})
	require.NoError(t, err)
	require.NoError(t, f.Close())

	want, err := snapshot.NewV3(zap.NewNop()).Status(path)
	require.NoError(t, err)
	got, err := statusOf(path)
	require.NoError(t, err)
	assert.Equal(t, dbStatus{Revision: want.Revision, Keys: want.TotalKey, Size: want.TotalSize, Hash: want.Hash}, got)
	assert.Equal(t, got, dbStatus{Revision: rep.Revision, Keys: rep.Keys, Size: rep.DBSize, Hash: rep.Hash}, "the report")
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.EqualValues(t, resp.Count, got.Keys, "keys alive")
	assert.Equal(t, resp.Header.Revision, got.Revision)
}
