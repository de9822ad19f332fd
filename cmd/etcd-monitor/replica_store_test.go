package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// store.queue_bytes bounds the PostgreSQL history queue in memory from the YAML; a
// bound under 1 KiB, or one for a store that has no queue, is refused naming the key.
func TestStoreQueueBytesConfig(t *testing.T) {
	load := func(yaml string) (Config, error) {
		cfg := defaultConfig()
		if err := loadConfig(writeFile(t, "c.yaml", yaml), &cfg); err != nil {
			return cfg, err
		}
		return cfg, cfg.validate()
	}
	cfg, err := load("store:\n  type: postgres\n  dsn_env: X\n  queue_bytes: 1048576\n")
	require.NoError(t, err)
	assert.Equal(t, int64(1<<20), cfg.Store.QueueBytes)
	for _, bad := range []string{
		"store:\n  type: postgres\n  dsn_env: X\n  queue_bytes: 100\n",
		"store:\n  type: bbolt\n  path: /tmp/x.db\n  queue_bytes: 1048576\n",
	} {
		_, err := load(bad)
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "store.queue_bytes", bad)
	}
}
