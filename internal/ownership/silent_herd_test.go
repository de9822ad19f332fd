package ownership

import (
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

// A session whose many holdings read their keys again at once, their shared watch
// stream given up as silent, keeps its lease while the member the stream went through
// is silent: those reads, in flight beside its renewals, may leave two renewal requests
// in a row to that member, and a renewal does not stop at two.
func TestSessionKeptWhileManyHoldingsReadAgain(t *testing.T) {
	const ttl = 6 * time.Second
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 120*time.Second)
	pfx := etcdtest.Prefix(t)
	admin := c.Client(2)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[1].GRPCURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	holder := NewHolder(cli, ttl, nil, nil)
	defer holder.Close()
	v := &Vocab{
		Pkg: "test", NotHeld: errors.New("not held"), Lost: errors.New("lost"), Closed: ErrClosed,
		Invalid: errors.New("invalid"), Busy: errors.New("busy"),
		Blocked: func(string, int64) error { return errors.New("blocked") },
	}
	const n = 100
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
	// The bridge lets one read of up to 32 KiB through after Blackhole: use it up.
	_, err = admin.Put(ctx, pfx+"pad", strings.Repeat("x", 40<<10))
	require.NoError(t, err)

	assert.Never(t, func() bool { return ses.Err() != nil }, 3*ttl, 50*time.Millisecond,
		"the session is lost")
	require.NoError(t, ses.Err())
	for i, h := range hs {
		assert.NoError(t, h.Check(), "holding %d", i)
	}
}
