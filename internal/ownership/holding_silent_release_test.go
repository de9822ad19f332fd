package ownership

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// While the member a session's holdings watch through is silent, a holding released is
// released (not lost) and the others still learn of their keys' deletes.
func TestHoldingsReleaseWhileStreamSilent(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 120*time.Second)
	pfx := etcdtest.Prefix(t)
	admin := c.Client(2)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[1].GRPCURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	holder := NewHolder(cli, 6*time.Second, nil, nil)
	defer holder.Close()
	v := &Vocab{
		Pkg: "test", NotHeld: errors.New("not held"), Lost: errors.New("lost"), Closed: ErrClosed,
		Invalid: errors.New("invalid"), Busy: errors.New("busy"),
		Blocked: func(string, int64) error { return errors.New("blocked") },
	}
	const n = 5
	hs := make([]*Holding, n)
	for i := range hs {
		dir := fmt.Sprintf("%s%d/", pfx, i)
		cl := NewClaim(holder, dir, "", Predecessor(dir), v)
		defer cl.Close()
		require.NoError(t, cl.Acquire(ctx, false))
		hs[i] = cl.Last()
		hs[i].Done()
	}
	ses := hs[0].ses
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ses.watchMu.Lock()
		defer ses.watchMu.Unlock()
		if assert.NotNil(ct, ses.watches) {
			assert.Equal(ct, n, ses.watches.refs)
		}
	}, 10*time.Second, 10*time.Millisecond)
	cli.SetEndpoints(c.Members[1].GRPCURL, c.Members[2].GRPCURL)
	c.Blackhole(1)
	defer c.Unblackhole(1)
	_, err = admin.Put(ctx, pfx+"pad", strings.Repeat("x", 40<<10))
	require.NoError(t, err)

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
