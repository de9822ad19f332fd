package ratelimit

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// With a period so long that the wait for a token does not fit in a Duration, the wait
// is the longest one, not an overflow that Wait would take as 1ms and spin on.
func TestWaitForASlowRefillDoesNotOverflow(t *testing.T) {
	ctx := etcdtest.Context(t, 10*time.Second)
	l, err := New(etcdtest.Client(t), etcdtest.Prefix(t)+"bucket", 1, math.MaxInt64, WithBurst(10), WithBatch(10))
	require.NoError(t, err)
	defer l.Close()
	ok, err := l.Allow(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	n, wait, err := l.withdraw(ctx, 10) // as Wait does, for a whole batch
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Greater(t, wait, 100*365*24*time.Hour)
}
