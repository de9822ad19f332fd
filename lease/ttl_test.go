package lease_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lease"
)

// A huge TTL must not overflow into etcd's minimum TTL: the caller asked for "forever"
// and must get an error (above etcd's maximum lease TTL) or what it asked for.
func TestHugeTTLRejected(t *testing.T) {
	t.Parallel()
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	k, err := lease.New(ctx, cli, time.Duration(math.MaxInt64))
	if err == nil {
		defer k.Close()
		got, err := k.TTL(context.Background())
		require.NoError(t, err)
		require.Greater(t, got, time.Hour, "asked for a ~292-year lease, etcd granted %v", got)
		return
	}
	require.ErrorIs(t, err, lease.ErrInvalidArgument)
}
