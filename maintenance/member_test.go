package maintenance_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// TestRemoveRefusedWhenItWouldCostQuorum stops one member of three: removing a healthy
// member would leave one healthy of two voters and is refused; removing the dead one
// is allowed.
func TestRemoveRefusedWhenItWouldCostQuorum(t *testing.T) {
	c := newCluster(t, 3)
	m, cli := clusterMaintainer(t, c)
	ctx := etcdtest.Context(t, 2*time.Minute) // each check waits out the stopped member's timeout
	lead := c.Leader()
	dead, alive := (lead+1)%3, (lead+2)%3
	deadID, aliveID := health.ID(c.Members[dead].ID()), health.ID(c.Members[alive].ID())
	c.StopMember(dead)

	for _, dry := range []bool{true, false} {
		rep, err := m.Remove(ctx, maintenance.RemoveRequest{ID: aliveID, DryRun: dry})
		require.ErrorIs(t, err, maintenance.ErrQuorum, "dry run %v", dry)
		assert.Contains(t, err.Error(), "leaves 1 healthy of 2 voting members, and a quorum needs 2")
		require.NotNil(t, rep)
		assert.Empty(t, rep.Plan)
	}
	resp, err := cli.MemberList(ctx)
	require.NoError(t, err)
	assert.Len(t, resp.Members, 3, "nothing was removed")

	rep, err := m.Remove(ctx, maintenance.RemoveRequest{ID: deadID, DryRun: true})
	require.NoError(t, err)
	require.Len(t, rep.Plan, 1)
	assert.Equal(t, 2, rep.Voters)
	assert.Equal(t, 2, rep.QuorumAfter)

	_, err = m.Remove(ctx, maintenance.RemoveRequest{ID: 0xdead})
	assert.ErrorIs(t, err, maintenance.ErrNotFound)
}

// TestLearnerAddPromoteRemove adds a learner, starts it, promotes it once it has caught
// up, and removes a learner that never started.
func TestLearnerAddPromoteRemove(t *testing.T) {
	c := newCluster(t, 3)
	m, cli := clusterMaintainer(t, c)
	ctx := etcdtest.Context(t, 60*time.Second)

	// A learner that never starts costs no quorum and can be removed.
	ghost, err := m.AddLearner(ctx, maintenance.AddRequest{PeerURLs: []string{"http://127.0.0.1:1"}})
	require.NoError(t, err)
	require.NotZero(t, ghost.MemberID)
	assert.Contains(t, ghost.InitialCluster, "NAME=http://127.0.0.1:1")
	_, err = m.Promote(ctx, maintenance.PromoteRequest{ID: ghost.MemberID, Timeout: time.Second})
	require.ErrorIs(t, err, maintenance.ErrNotCaughtUp)
	rm, err := m.Remove(ctx, maintenance.RemoveRequest{ID: ghost.MemberID})
	require.NoError(t, err)
	assert.Equal(t, 3, rm.Voters, "removing a learner leaves the voters alone")

	// A learner that starts is promoted once it has caught up.
	nm := c.MustNewMember(t)
	peer := "unix://" + nm.PeerListeners[0].Addr().String()
	add, err := m.AddLearner(ctx, maintenance.AddRequest{PeerURLs: []string{peer}})
	if err != nil && strings.Contains(err.Error(), "not http(s)") {
		t.Skip("peer URL scheme of the test cluster")
	}
	require.NoError(t, err)
	nm.IsLearner = true
	nm.NewCluster = false
	nm.InitialPeerURLsMap = types.URLsMap{}
	for _, mm := range c.Members {
		nm.InitialPeerURLsMap[mm.Name] = mm.PeerURLs
	}
	nm.InitialPeerURLsMap[nm.Name] = types.MustNewURLs([]string{peer})
	c.Members = append(c.Members, nm)
	require.NoError(t, nm.Launch())

	m, _ = clusterMaintainer(t, c) // knows the new member's endpoint
	prom, err := m.Promote(ctx, maintenance.PromoteRequest{ID: add.MemberID})
	require.NoError(t, err)
	assert.Equal(t, 4, prom.Voters)
	assert.Equal(t, 3, prom.QuorumAfter)
	resp, err := cli.MemberList(ctx)
	require.NoError(t, err)
	for _, mem := range resp.Members {
		assert.False(t, mem.IsLearner, "%x is still a learner", mem.ID)
	}
}

// TestAddLearnerWaitsOutEtcdsHealthInterval adds a learner to a cluster that has just
// started, with a settle timeout shorter than the 5s etcd wants its member connected to
// every voter before it accepts a membership change: the add waits that out rather than
// failing as "unhealthy cluster".
func TestAddLearnerWaitsOutEtcdsHealthInterval(t *testing.T) {
	c := newCluster(t, 3)
	logs, seen := observer.New(zap.DebugLevel)
	m, cli := clusterMaintainer(t, c, maintenance.WithSettleTimeout(500*time.Millisecond),
		maintenance.WithLogger(zap.New(logs)))
	ctx := etcdtest.Context(t, 60*time.Second)

	add, err := m.AddLearner(ctx, maintenance.AddRequest{PeerURLs: []string{"http://127.0.0.1:1"}})
	require.NoError(t, err)
	if seen.FilterMessageSnippet("refused the membership change as unhealthy").Len() == 0 {
		t.Skip("the cluster was older than etcd's 5s health interval by the time of the add: nothing to wait out")
	}
	resp, err := cli.MemberList(ctx)
	require.NoError(t, err)
	var learners []health.ID
	for _, mem := range resp.Members {
		if mem.IsLearner {
			learners = append(learners, health.ID(mem.ID))
		}
	}
	assert.Equal(t, []health.ID{add.MemberID}, learners)
}

// TestAddLearnerWaitsOutAPartitionThatHeals adds a learner while a follower is cut off
// from its peers for a second: the add waits for the cluster to be healthy again rather
// than refusing a turbulence the settle timeout is there to wait out.
func TestAddLearnerWaitsOutAPartitionThatHeals(t *testing.T) {
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	cli := c.ClusterClient()
	ctx := etcdtest.Context(t, 90*time.Second)
	ch, err := health.New(cli, health.WithEndpoints(endpoints(c)), health.WithTimeout(5*time.Second))
	require.NoError(t, err)
	defer ch.Close()
	m, err := maintenance.New(cli, maintenance.WithChecker(ch), maintenance.WithSettleTimeout(30*time.Second),
		maintenance.WithPollInterval(50*time.Millisecond))
	require.NoError(t, err)

	cut := (c.Leader() + 1) % 3
	c.Partition(cut)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		r, err := ch.Check(ctx)
		if assert.NoError(ct, err) {
			assert.NotEmpty(ct, r.Partition.Members, "the cut member seen as partitioned")
		}
	}, 20*time.Second, 100*time.Millisecond)
	// A dry run looks once, and says what it saw.
	checks := ch.Stats().Count
	_, err = m.AddLearner(ctx, maintenance.AddRequest{PeerURLs: []string{"http://127.0.0.1:1"}, DryRun: true})
	require.ErrorIs(t, err, maintenance.ErrUnhealthy)
	assert.Contains(t, err.Error(), "partitioned")
	assert.Equal(t, checks+1, ch.Stats().Count, "checks by the dry run")

	// Healed once the add has seen the partition: its check comes first, then the heal.
	checks = ch.Stats().Count
	added, healed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(healed)
		defer c.Heal(cut)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ch.Stats().Count < checks+2 {
			select {
			case <-added:
				return
			case <-tick.C:
			}
		}
	}()

	add, err := m.AddLearner(ctx, maintenance.AddRequest{PeerURLs: []string{"http://127.0.0.1:1"}})
	close(added)
	<-healed
	require.NoError(t, err)
	assert.NotZero(t, add.MemberID)
	assert.Equal(t, 3, add.Voters)
}
