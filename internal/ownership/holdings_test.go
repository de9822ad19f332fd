package ownership

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// testVocab is a Vocab of plain errors, for the claims of tests.
func testVocab() *Vocab {
	return &Vocab{
		Pkg: "test", NotHeld: errors.New("not held"), Lost: errors.New("lost"), Closed: ErrClosed,
		Invalid: errors.New("invalid"), Busy: errors.New("busy"),
		Blocked: func(string, int64) error { return errors.New("blocked") },
	}
}

// watchedHoldings acquires n claims on holder, one key each under pfx, and starts their
// watches (Done), then waits until all n watch on their session's shared stream. The
// returned func closes the claims.
func watchedHoldings(t *testing.T, ctx context.Context, holder *Holder, pfx string, n int) ([]*Holding, func()) {
	t.Helper()
	v := testVocab()
	hs := make([]*Holding, n)
	claims := make([]*Claim, 0, n)
	closeAll := func() {
		for _, cl := range claims {
			cl.Close()
		}
	}
	for i := range hs {
		dir := fmt.Sprintf("%s%d/", pfx, i)
		cl := NewClaim(holder, dir, "", Predecessor(dir), v)
		claims = append(claims, cl)
		if err := cl.Acquire(ctx, false); err != nil {
			closeAll()
			require.NoError(t, err)
		}
		hs[i] = cl.Last()
		hs[i].Done() // its watch starts
	}
	ses := hs[0].ses
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ses.watchMu.Lock()
		defer ses.watchMu.Unlock()
		if assert.NotNil(ct, ses.watches) {
			assert.Equal(ct, n, ses.watches.refs, "watches on the session's stream")
		}
	}, 10*time.Second, 10*time.Millisecond)
	return hs, closeAll
}

// pinnedClient returns a client of member 1 alone of c, dialed with opts, closed when t
// ends: what it streams goes through member 1 until silenceMember1.
func pinnedClient(t *testing.T, c *etcdtest.Cluster, opts ...grpc.DialOption) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{c.Members[1].GRPCURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: opts,
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// silenceMember1 lets cli (a pinnedClient) reach member 2 too, then makes member 1
// silent until the returned func is called (or t ends). The bridge lets one read of up
// to 32 KiB through after Blackhole: a put through admin (a client of another member)
// under pfx uses it up.
func silenceMember1(t *testing.T, ctx context.Context, c *etcdtest.Cluster, cli, admin *clientv3.Client, pfx string) (restore func()) {
	t.Helper()
	cli.SetEndpoints(c.Members[1].GRPCURL, c.Members[2].GRPCURL)
	c.Blackhole(1)
	var once sync.Once
	restore = func() { once.Do(func() { c.Unblackhole(1) }) }
	t.Cleanup(restore)
	_, err := admin.Put(ctx, pfx+"pad", strings.Repeat("x", 40<<10))
	require.NoError(t, err)
	return restore
}
