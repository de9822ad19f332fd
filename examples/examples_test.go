package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// Every example the README promises exists, runs to completion on an etcd of its own
// and says what it did.
func TestEveryExampleRuns(t *testing.T) {
	for _, name := range order {
		_, ok := registry[name]
		assert.True(t, ok, "example %q is not registered", name)
	}
	for _, name := range names() {
		t.Run(name, func(t *testing.T) {
			out, err := os.Create(filepath.Join(t.TempDir(), "out"))
			require.NoError(t, err)
			defer out.Close()
			e := &env{
				cli:       etcdtest.Client(t),
				endpoints: etcdtest.Endpoints(),
				nodeID:    "test",
				embedded:  true,
				out:       out,
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, registry[name].run(ctx, e))
			info, err := out.Stat()
			require.NoError(t, err)
			assert.NotZero(t, info.Size(), "example %q printed nothing", name)
		})
	}
}
