package election_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/etcd-monitor/etcd-monitor/election"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// memberClient returns a client of member i of c alone, closed when t ends.
func memberClient(t *testing.T, c *etcdtest.Cluster, i int) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[i].GRPCURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// An observer whose watch streams from a member that falls silent — it stops answering
// anyone, its connections stay open, its peers stop hearing from it: a frozen process, a
// dead machine — reports a leader elected through the other members while that member
// is still silent, not once it answers again: the silent watch is given up, the leader
// read again and watched again through the healthy member. Its client knows a healthy
// member too.
func TestObserverSilentMember(t *testing.T) {
	// The observer's call timeout is a default candidate's, a sixth of 10s (1.67s): its
	// watch is given up after twice that without an answer, found so at the next
	// progress request (one call timeout later at most), then the leader is read and
	// watched again, each sent again through the next endpoint after a call timeout if
	// the silent member swallows it: about five call timeouts, 8.3s.
	const bound = 9 * time.Second
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 120*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	admin := c.Client(2)

	// The observer reads and watches through member 1 alone, then learns of member 2.
	ocli := memberClient(t, c, 1)
	core, logs := zapobserver.New(zapcore.InfoLevel)
	obs, err := election.NewObserver(ocli, pfx, election.WithLogger(zap.New(core)))
	require.NoError(t, err)
	defer obs.Close()
	assert.False(t, recv(t, obs.Changes(), 10*time.Second, "initial").Elected())
	// Another observer knows member 1 alone: it stays blind, and says why.
	blind, err := election.NewObserver(memberClient(t, c, 1), pfx)
	require.NoError(t, err)
	defer blind.Close()
	assert.False(t, recv(t, blind.Changes(), 10*time.Second, "initial, blind").Elected())
	a := newCandidate(t, c.Client(0), pfx, "a")
	b := newCandidate(t, c.Client(2), pfx, "b")
	require.NoError(t, a.Campaign(ctx))
	require.Equal(t, "a", recv(t, obs.Changes(), 10*time.Second, "a").ID)
	require.Equal(t, "a", recv(t, blind.Changes(), 10*time.Second, "a, blind").ID)
	ocli.SetEndpoints(c.Members[1].GRPCURL, c.Members[2].GRPCURL)

	// Member 1 falls silent. The bridge lets one read of up to 32 KiB through in each
	// direction after Blackhole: a value of 40 KiB put under the election's prefix, which
	// member 1 sends on the observer's watch, uses it up (and is deleted again, so that
	// it never looks like a candidate); only then is member 1 cut off from its peers,
	// so that its watch's end for want of a leader cannot slip through.
	c.Blackhole(1)
	defer c.Unblackhole(1)
	pad := pfx + "/pad"
	pr, err := admin.Put(ctx, pad, strings.Repeat("x", 40<<10))
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.GreaterOrEqual(ct, c.Members[1].Server.KV().Rev(), pr.Header.Revision, "member 1 applied the pad")
	}, 10*time.Second, 10*time.Millisecond)
	_, err = admin.Delete(ctx, pad)
	require.NoError(t, err)
	c.Partition(1)
	defer c.Heal(1)

	// The leader changes through members 0 and 2.
	require.NoError(t, a.Resign(ctx))
	require.NoError(t, b.Campaign(ctx))

	// The observer reports it while member 1 is still silent.
	var last election.Leader
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		for more := true; more; {
			select {
			case l, ok := <-obs.Changes():
				if ok {
					last = l
				}
				more = ok
			default:
				more = false
			}
		}
		assert.Equal(ct, "b", last.ID, "the leader reported")
		assert.Equal(ct, b.Token(), last.Token, "the leader's token")
		assert.NoError(ct, obs.Err(), "the observer follows again")
		assert.ErrorIs(ct, blind.Err(), ownership.ErrWatchSilent, "the blind observer's error")
	}, 3*bound, 50*time.Millisecond, "the observer reports the new leader while member 1 is silent")
	assert.Positive(t, logs.FilterMessageSnippet("silent").Len(), "the silent watch is logged")

	// Both close while member 1 is silent, the blind one reading through it.
	require.NoError(t, obs.Close())
	assert.ErrorIs(t, obs.Err(), election.ErrClosed)
	require.NoError(t, blind.Close())
	assert.ErrorIs(t, blind.Err(), election.ErrClosed)
}

// A consumer that keeps the observer waiting — it does not receive for longer than the
// silence after which a watch is given up — is not taken for a silent member: the watch
// goes unread meanwhile, not unanswered, and the leader that was waiting is reported.
func TestObserverSlowConsumerIsNotSilence(t *testing.T) {
	// Twice a default candidate's call timeout (3.3s), and up to one call timeout more
	// before the observer would find its watch silent.
	const silence = 5 * time.Second
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	core, logs := zapobserver.New(zapcore.InfoLevel)
	obs, err := election.NewObserver(etcdtest.Client(t), pfx, election.WithLogger(zap.New(core)))
	require.NoError(t, err)
	defer obs.Close()
	a := newCandidate(t, etcdtest.Client(t), pfx, "a")

	// The observer reports "no leader", which the consumer leaves on Changes, then sees
	// a elected on its watch and waits to report it.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Len(ct, obs.Changes(), 1, "no leader, waiting on Changes")
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, a.Campaign(ctx))
	// The consumer pauses for longer than the silence; the observer, waiting for it,
	// would give the watch up only once the consumer receives again.
	silent := func() bool { return logs.FilterMessageSnippet("silent").Len() > 0 }
	assert.Never(t, silent, 2*silence, 50*time.Millisecond, "a watch given up as silent while the consumer waits")
	assert.False(t, recv(t, obs.Changes(), time.Second, "no leader").Elected())
	assert.Equal(t, "a", recv(t, obs.Changes(), 10*time.Second, "a").ID)
	assert.Never(t, silent, silence, 50*time.Millisecond, "a watch given up as silent once the consumer received")
	assert.NoError(t, obs.Err())
}
