package lock_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// A holder whose watch on its own key streams from a member that stops answering while
// the rest of the cluster serves (a frozen etcd process, a dead machine whose connections
// stay open) learns that its key was deleted — Done closes, Err says the key is gone —
// within a few CallTimeouts, not once the member answers again: the silent watch is
// given up, the key read again through the healthy member and found gone. Its client
// knows a healthy member too.
func TestHolderSilentMember(t *testing.T) {
	// CallTimeout 1s: the stream is given up after 2s without an answer, found so at
	// the next check (1s later at most), and the read that follows is hedged after 1s,
	// then 2s (the client may send both to the silent member).
	const ttl = 6 * time.Second
	const bound = 6 * time.Second
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 120*time.Second)
	key := etcdtest.Prefix(t) + "l"
	admin := c.Client(2)

	// The holder locks and watches its key through member 1 alone, then learns of member
	// 2, then member 1 falls silent. Its watch streams are counted: the watch must open
	// through member 1 before the client learns of member 2, or it could open through
	// the healthy member and the test would prove nothing.
	hcli, watches := watchCountingClient(t, c, 1)
	m := newMutex(t, hcli, key, lock.WithTTL(ttl))
	require.NoError(t, m.Lock(ctx))
	done := m.Done() // the holding's watch starts
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Positive(ct, watches.Load(), "the holder watches its key")
	}, 3*ttl, 10*time.Millisecond)
	hcli.SetEndpoints(c.Members[1].GRPCURL, c.Members[2].GRPCURL)
	c.Blackhole(1)
	defer c.Unblackhole(1)

	// Another client deletes the holder's key through a healthy member. The bridge lets
	// one read of up to 32 KiB through in each direction after Blackhole: a value of 40
	// KiB put on the key first uses it up, so that the delete cannot slip through.
	_, err := admin.Put(ctx, m.Key(), strings.Repeat("x", 40<<10), clientv3.WithIgnoreLease())
	require.NoError(t, err)
	resp, err := admin.Delete(ctx, m.Key())
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.Deleted, "the holder's key")

	// The holder learns it while member 1 is still silent.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		select {
		case <-done:
		default:
			assert.Fail(ct, "Done still open")
			return
		}
		err := m.Err()
		assert.ErrorIs(ct, err, lock.ErrLost)
		assert.ErrorIs(ct, err, ownership.ErrKeyLost)
		assert.False(ct, errors.Is(err, lock.ErrSessionLost), "lost for the key, not the session: %v", err)
	}, 3*bound, 50*time.Millisecond)
	assert.ErrorIs(t, m.Unlock(ctx), lock.ErrNotHeld)
}
