package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
)

func TestOpenConfig(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenConfig(ctx, store.Config{Path: path, Retention: store.Retention{Raw: 3600e9}})
	require.NoError(t, err)
	assert.IsType(t, &store.Bolt{}, s)
	require.NoError(t, s.Close())
	s, err = store.OpenConfig(ctx, store.Config{Type: "memory"})
	require.NoError(t, err)
	assert.IsType(t, &store.Memory{}, s)

	// Without the driver linked in, postgres is a clear error.
	t.Setenv("TEST_STORE_DSN", "postgres://u:secret@localhost/db")
	_, err = store.OpenConfig(ctx, store.Config{Type: "postgres", DSNEnv: "TEST_STORE_DSN"})
	assert.ErrorIs(t, err, store.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "store/postgres")
	assert.NotContains(t, err.Error(), "secret")

	for name, c := range map[string]struct {
		cfg store.Config
		key string
	}{
		"bbolt without path":      {store.Config{}, "store.path"},
		"bbolt with a DSN":        {store.Config{Path: path, DSNEnv: "X"}, "store.dsn_env"},
		"bbolt with minute":       {store.Config{Path: path, Retention: store.Retention{Minute: 1}}, "store.retention.minute"},
		"memory with path":        {store.Config{Type: "memory", Path: path}, "store.path"},
		"postgres without DSN":    {store.Config{Type: "postgres"}, "store.dsn_file"},
		"postgres with both DSNs": {store.Config{Type: "postgres", DSNFile: "f", DSNEnv: "E"}, "store.dsn_file"},
		"postgres with a path":    {store.Config{Type: "postgres", DSNEnv: "E", Path: path}, "store.path"},
		"negative retention":      {store.Config{Type: "postgres", DSNEnv: "E", Retention: store.Retention{Raw: -1}}, "store.retention"},
		"negative queue":          {store.Config{Type: "postgres", DSNEnv: "E", QueueSize: -1}, "store.queue_size"},
		"tiny queue bytes":        {store.Config{Type: "postgres", DSNEnv: "E", QueueBytes: 100}, "store.queue_bytes"},
		"bbolt with queue bytes":  {store.Config{Path: path, QueueBytes: 1 << 20}, "store.queue_bytes"},
		"unknown type":            {store.Config{Type: "mysql"}, "store.type"},
	} {
		err := c.cfg.Validate()
		require.ErrorIs(t, err, store.ErrInvalidArgument, name)
		assert.Contains(t, err.Error(), c.key, name)
		_, err = store.OpenConfig(ctx, c.cfg)
		assert.ErrorIs(t, err, store.ErrInvalidArgument, name)
	}
}

func TestConfigDSN(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dsn")
	require.NoError(t, os.WriteFile(file, []byte("  postgres://u:secret@db/x \n"), 0o600))
	dsn, err := store.Config{Type: "postgres", DSNFile: file}.DSN()
	require.NoError(t, err)
	assert.Equal(t, "postgres://u:secret@db/x", dsn)

	t.Setenv("TEST_STORE_DSN", "host=db password=secret")
	dsn, err = store.Config{Type: "postgres", DSNEnv: "TEST_STORE_DSN"}.DSN()
	require.NoError(t, err)
	assert.Equal(t, "host=db password=secret", dsn)

	_, err = store.Config{Type: "postgres", DSNEnv: "TEST_STORE_NO_SUCH_VARIABLE"}.DSN()
	assert.ErrorIs(t, err, store.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "TEST_STORE_NO_SUCH_VARIABLE")
	_, err = store.Config{Type: "postgres", DSNFile: filepath.Join(dir, "missing")}.DSN()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "store.dsn_file")
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, err = store.Config{Type: "postgres", DSNFile: empty}.DSN()
	assert.ErrorIs(t, err, store.ErrInvalidArgument)
}
