package ownership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// A holding watched first after its creation revision was compacted neither ends as
// lost nor goes blind: the watch's compaction error is a break, followed by a read, and
// a later delete of the key still ends it.
func TestHoldingWatchFromCompactedRevision(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t)
	cli := c.Client(0)
	holder := NewHolder(cli, 6*time.Second, nil, nil)
	defer holder.Close()
	cl := NewClaim(holder, pfx, "", Predecessor(pfx), testVocab())
	defer cl.Close()
	require.NoError(t, cl.Acquire(ctx, false))
	h := cl.Last()
	var rev int64
	for i := 0; i < 5; i++ {
		r, err := cli.Put(ctx, pfx+"x/other", "v")
		require.NoError(t, err)
		rev = r.Header.Revision
	}
	c.Compact(ctx, rev)
	done := h.Done()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		h.ses.watchMu.Lock()
		defer h.ses.watchMu.Unlock()
		assert.NotNil(ct, h.ses.watches, "the holding watches again")
	}, 10*time.Second, 10*time.Millisecond)
	select {
	case <-done:
		t.Fatalf("holding ended: %v", h.Err())
	default:
	}
	_, err := cli.Delete(ctx, h.Key())
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		select {
		case <-done:
			assert.ErrorIs(ct, h.Err(), ErrKeyLost)
		default:
			assert.Fail(ct, "Done still open")
		}
	}, 10*time.Second, 10*time.Millisecond)
}
