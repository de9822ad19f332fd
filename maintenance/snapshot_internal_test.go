package maintenance

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
