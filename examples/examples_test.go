package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// runs numbers the runs of TestEveryExampleRuns in this process (go test -count), so
// that each has a node ID, and so key prefixes, of its own: a run that found the keys
// an earlier one left (a value already set, a queue already filled) would wait for a
// change that never comes.
var runs atomic.Int64

// Every example the README promises exists, runs to completion on an etcd of its own
// and says what it did.
func TestEveryExampleRuns(t *testing.T) {
	nodeID := fmt.Sprintf("test%d", runs.Add(1))
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
				nodeID:    nodeID,
				embedded:  true,
				out:       out,
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = registry[name].run(ctx, e)
			if err != nil {
				// What the example said before it failed shows how far it got.
				said, _ := os.ReadFile(out.Name())
				t.Logf("example %q printed:\n%s", name, said)
			}
			require.NoError(t, err)
			info, err := out.Stat()
			require.NoError(t, err)
			assert.NotZero(t, info.Size(), "example %q printed nothing", name)
		})
	}
}
