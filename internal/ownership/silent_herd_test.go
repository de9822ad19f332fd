package ownership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

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
	cli := pinnedClient(t, c)
	holder := NewHolder(cli, ttl, nil, nil)
	defer holder.Close()
	const n = 100
	hs, closeAll := watchedHoldings(t, ctx, holder, pfx, n)
	defer closeAll()
	ses := hs[0].ses
	defer silenceMember1(t, ctx, c, cli, admin, pfx)()

	lost := func() bool { return ses.Err() != nil }
	assert.Never(t, lost, 3*ttl, 50*time.Millisecond, "the session is lost")
	assert.NoError(t, ses.Err(), "the session at the end")
	for i, h := range hs {
		assert.NoError(t, h.Check(), "holding %d", i)
	}
}
