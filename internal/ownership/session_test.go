package ownership_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// TestMain runs the tests against one in-process etcd and fails the run if any
// goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// A released session is not alive, although its deadline has not passed: an
// acquisition finishing as its owner closes must not report success on a revoked lease.
func TestReleasedSessionNotAlive(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	ses, err := ownership.Grant(ctx, cli, 5*time.Second, nil)
	require.NoError(t, err)
	require.NoError(t, ses.Alive())
	require.NoError(t, ses.Release())
	assert.Error(t, ses.Alive())
	assert.Error(t, ses.WaitAlive(ctx))
}
