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

// A grant whose reply is slow does not cost the session: the first renewal is due an
// interval after the grant was sent, not after its reply arrived (which, later than
// the deadline less the interval, left the lease to lapse before its first renewal).
func TestSlowGrantReplyKeepsSession(t *testing.T) {
	cli, f := etcdtest.FaultClient(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	const ttl = 3 * time.Second
	// Sent at t0, answered at t0+1.8s: known alive until t0+2.5s (TTL less the margin).
	f.Delay(etcdtest.IsGrant, 1800*time.Millisecond)
	ses, err := ownership.Grant(ctx, cli, ttl, nil)
	f.Delay(nil, 0)
	require.NoError(t, err)
	defer ses.Release()
	assert.Never(t, func() bool { return ses.Alive() != nil }, 2*ttl, 50*time.Millisecond,
		"session lost after a slow grant")
}

// Renewals come as late as leaves a third of the TTL before the deadline, so that a
// lease cut off from us lapses at etcd as soon as etcd's own keep-alive would let it.
func TestRenewInterval(t *testing.T) {
	for _, c := range []struct{ ttl, want time.Duration }{
		{time.Second, time.Second / 3}, // a third
		{2 * time.Second, time.Second}, // 667ms left to land, as etcd's keep-alive
		{3 * time.Second, time.Second}, // at most a second
		{10 * time.Second, time.Second},
	} {
		got := ownership.RenewInterval(c.ttl)
		assert.Equal(t, c.want, got, "TTL %v", c.ttl)
		assert.GreaterOrEqual(t, c.ttl-ownership.Margin(c.ttl)-got, c.ttl/3, "TTL %v: time left to renew", c.ttl)
	}
}
