package ownership

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// While the member a session's holdings watch through is silent, a holding released is
// released (not lost) and the others still learn of their keys' deletes.
func TestHoldingsReleaseWhileStreamSilent(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 120*time.Second)
	pfx := etcdtest.Prefix(t)
	admin := c.Client(2)
	cli := pinnedClient(t, c)
	holder := NewHolder(cli, 6*time.Second, nil, nil)
	defer holder.Close()
	const n = 5
	hs, closeAll := watchedHoldings(t, ctx, holder, pfx, n)
	defer closeAll()
	defer silenceMember1(t, ctx, c, cli, admin, pfx)()

	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, hs[0].Release(rctx))
	assert.NoError(t, hs[0].Err())
	for i := 1; i < n; i++ {
		_, err := admin.Delete(ctx, hs[i].Key())
		require.NoError(t, err)
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		for i := 1; i < n; i++ {
			select {
			case <-hs[i].Done():
				assert.ErrorIs(ct, hs[i].Err(), ErrKeyLost, "holding %d", i)
			default:
				assert.Fail(ct, "Done still open", "holding %d", i)
			}
		}
	}, 40*time.Second, 50*time.Millisecond)
}
