package maintenance

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
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
