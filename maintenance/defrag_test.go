package maintenance_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// fragment writes and deletes about 2 MB and compacts, so every member's database has
// free pages a defragmentation can give back.
func fragment(t *testing.T, ctx context.Context, cli *clientv3.Client, prefix string) {
	t.Helper()
	value := strings.Repeat("x", 16<<10)
	for i := range 128 {
		_, err := cli.Put(ctx, fmt.Sprintf("%s%04d", prefix, i), value)
		require.NoError(t, err)
	}
	resp, err := cli.Delete(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	_, err = cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)
}

// TestDefragmentUnderWriteLoad defragments a 3-node cluster while a client writes
// steadily: no write fails, every member's database shrinks, the members are done one
// at a time, and the leader last.
func TestDefragmentUnderWriteLoad(t *testing.T) {
	c := newCluster(t, 3)
	m, cli := clusterMaintainer(t, c)
	ctx := etcdtest.Context(t, 60*time.Second)
	fragment(t, ctx, cli, "/frag/")
	leader := health.ID(c.Members[c.Leader()].ID())

	dry, err := m.Defragment(ctx, maintenance.DefragmentRequest{DryRun: true})
	require.NoError(t, err)
	require.Len(t, dry.Plan, 3)
	assert.Equal(t, leader, dry.Plan[2].MemberID, "the plan puts the leader last")
	for _, md := range dry.Members {
		assert.Equal(t, maintenance.StatePending, md.State)
	}

	var (
		writes, failures atomic.Int64
		firstErr         atomic.Value
		stop             = make(chan struct{})
		wg               sync.WaitGroup
	)
	writer := c.ClusterClient()
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := writer.Put(wctx, fmt.Sprintf("/load/%d/%d", w, i%100), "v")
				cancel()
				writes.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	var seen []maintenance.MemberDefrag
	rep, err := m.Defragment(ctx, maintenance.DefragmentRequest{Progress: func(md maintenance.MemberDefrag) { seen = append(seen, md) }})
	close(stop)
	wg.Wait()
	require.NoError(t, err)

	assert.Zero(t, failures.Load(), "failed writes (first: %v)", firstErr.Load())
	assert.Positive(t, writes.Load())
	require.Len(t, rep.Members, 3)
	assert.Equal(t, rep.Members, seen, "progress reports every member, in order")
	assert.False(t, rep.Aborted)
	for i, md := range rep.Members {
		assert.Equal(t, maintenance.StateDone, md.State, md.Name)
		assert.Less(t, md.DBSizeAfter, md.DBSizeBefore, "%s shrinks", md.Name)
		assert.Equal(t, i == 2, md.WasLeader, "%s: the leader, and only the leader, goes last", md.Name)
		if i > 0 {
			prev := rep.Members[i-1]
			assert.False(t, md.Started.Before(prev.Started.Add(prev.Duration)), "%s started before %s finished", md.Name, prev.Name)
		}
	}
	assert.Equal(t, leader, rep.Members[2].ID)
	assert.Positive(t, rep.Freed())
	for _, md := range rep.Members {
		t.Logf("%s (leader %v): %d -> %d bytes in %v", md.Name, md.WasLeader, md.DBSizeBefore, md.DBSizeAfter, md.Duration)
	}
	t.Logf("%d writes during the run, %d failed; %d bytes freed in %v", writes.Load(), failures.Load(), rep.Freed(), rep.Duration)
}

// TestDefragmentMovesLeaderFirst hands leadership away before the leader's turn.
func TestDefragmentMovesLeaderFirst(t *testing.T) {
	c := newCluster(t, 3)
	m, _ := clusterMaintainer(t, c)
	ctx := etcdtest.Context(t, 60*time.Second)
	leader := health.ID(c.Members[c.Leader()].ID())
	rep, err := m.Defragment(ctx, maintenance.DefragmentRequest{MoveLeader: true})
	require.NoError(t, err)
	require.Len(t, rep.Members, 3)
	assert.NotZero(t, rep.LeaderMovedTo)
	assert.NotEqual(t, leader, rep.LeaderMovedTo)
	assert.Equal(t, leader, rep.Members[2].ID, "the former leader goes last")
	for _, md := range rep.Members {
		assert.False(t, md.WasLeader, "%s led while it was defragmented", md.Name)
	}
	actions := []string{}
	for _, s := range rep.Plan {
		actions = append(actions, s.Action)
	}
	assert.Equal(t, []string{"defragment", "defragment", "move-leader", "defragment"}, actions)
	assert.NotEqual(t, leader, health.ID(c.Members[c.Leader()].ID()))

	// MoveLeader on its own: a dry run changes nothing; then back to the first leader.
	now := health.ID(c.Members[c.Leader()].ID())
	dry, err := m.MoveLeader(ctx, maintenance.MoveLeaderRequest{To: leader, DryRun: true})
	require.NoError(t, err)
	require.Len(t, dry.Plan, 1)
	assert.Equal(t, now, dry.From)
	assert.Equal(t, now, health.ID(c.Members[c.Leader()].ID()))
	mv, err := m.MoveLeader(ctx, maintenance.MoveLeaderRequest{To: leader})
	require.NoError(t, err)
	assert.Equal(t, leader, mv.To)
	assert.Equal(t, leader, health.ID(c.Members[c.Leader()].ID()))
	auto, err := m.MoveLeader(ctx, maintenance.MoveLeaderRequest{})
	require.NoError(t, err)
	assert.NotEqual(t, leader, auto.To, "the most up-to-date follower")
	_, err = m.MoveLeader(ctx, maintenance.MoveLeaderRequest{To: 0xdead})
	assert.ErrorIs(t, err, maintenance.ErrNotFound)
}

// TestDefragmentAbortsWhenAMemberStops stops a member after the first one is done: the
// run cannot keep a quorum margin, so it aborts with a report and touches no one else,
// and the cluster stays healthy.
func TestDefragmentAbortsWhenAMemberStops(t *testing.T) {
	c := newCluster(t, 3)
	m, cli := clusterMaintainer(t, c, maintenance.WithSettleTimeout(time.Second))
	ctx := etcdtest.Context(t, 60*time.Second)
	index := memberIndex(c)
	leader := health.ID(c.Members[c.Leader()].ID())
	stopped := -1
	rep, err := m.Defragment(ctx, maintenance.DefragmentRequest{Progress: func(md maintenance.MemberDefrag) {
		if stopped >= 0 {
			return
		}
		for id, i := range index { // the other follower
			if id != md.ID && id != leader {
				stopped = i
				c.StopMember(i)
				return
			}
		}
	}})
	require.ErrorIs(t, err, maintenance.ErrAborted)
	require.ErrorIs(t, err, maintenance.ErrUnhealthy)
	require.NotNil(t, rep)
	require.GreaterOrEqual(t, stopped, 0)
	assert.True(t, rep.Aborted)
	assert.Contains(t, rep.Reason, c.Members[stopped].Name+" ("+health.ID(c.Members[stopped].ID()).Hex()+") is partitioned: unreachable")
	require.Len(t, rep.Members, 3)
	assert.Equal(t, maintenance.StateDone, rep.Members[0].State)
	assert.Equal(t, maintenance.StatePending, rep.Members[1].State)
	assert.Equal(t, maintenance.StatePending, rep.Members[2].State)

	// The two members left still serve.
	_, err = cli.Put(ctx, "/after-abort", "v")
	require.NoError(t, err)
	c.RestartMember(stopped)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		ml, err := m.Members(ctx)
		if !assert.NoError(ct, err) {
			return
		}
		assert.True(ct, ml.Healthy)
	}, 20*time.Second, 100*time.Millisecond)
}
