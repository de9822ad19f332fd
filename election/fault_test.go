package election_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/election"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

const faultTTL = 2 * time.Second

// TestClusterFaults runs the election's guarantees on one 3-node cluster, each with its
// fault injected. Sub-tests that stop members run last.
func TestClusterFaults(t *testing.T) {
	// Half a second without a leader's heartbeat before a follower campaigns, not the
	// default 100ms: a loaded machine delays heartbeats by hundreds of milliseconds (560ms
	// seen), and the elections that follow refuse renewals and drop proposals, so that
	// 2s leases were lost and requests timed out in sub-tests that have no fault of
	// that kind. The etcd leader stopped below is replaced half a second later too: the
	// holding across it has a TTL that leaves room for that.
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	t.Run("CampaignLeaseExpires", func(t *testing.T) { testCampaignLeaseExpires(t, c) })
	t.Run("CancelCampaign", func(t *testing.T) { testCancelCampaign(t, c) })
	t.Run("BlackholeLeader", func(t *testing.T) { testBlackholeLeader(t, c) })
	t.Run("LeaderTaskFailovers", func(t *testing.T) { testLeaderTaskFailovers(t, c) })
	t.Run("ObserverResync", func(t *testing.T) { testObserverResync(t, c) })
	t.Run("StopEtcdLeader", func(t *testing.T) { testStopEtcdLeader(t, c) })
}

// Guarantee 3 (election half): a candidate whose own lease expires while it waits gets
// an error from Campaign, never leadership.
func testCampaignLeaseExpires(t *testing.T, c *etcdtest.Cluster) {
	ctx := etcdtest.Context(t, 30*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	admin := c.Client(2)
	a := newCandidate(t, c.Client(0), pfx, "a", election.WithTTL(faultTTL))
	require.NoError(t, a.Campaign(ctx))

	// Cut off from etcd while waiting: its lease expires.
	b := newCandidate(t, c.Client(1), pfx, "b", election.WithTTL(faultTTL))
	bgot := make(chan error, 1)
	go func() { bgot <- b.Campaign(ctx) }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.EqualValues(ct, 2, etcdtest.Count(admin, pfx+"/")) }, 5*time.Second, 10*time.Millisecond)
	bKey := b.Key()
	require.NotEmpty(t, bKey)
	c.Blackhole(1)
	defer c.Unblackhole(1)
	err := recv(t, bgot, 3*faultTTL, "cut-off candidate")
	require.ErrorIs(t, err, election.ErrSessionLost)
	assert.False(t, b.IsLeader())
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.EqualValues(ct, 0, etcdtest.Count(admin, bKey)) }, 3*faultTTL, 50*time.Millisecond)
	require.NoError(t, a.Resign(ctx))
	c.Unblackhole(1)

	// Lease revoked while waiting, then the leader resigns at once: etcd's own Campaign
	// returns success here.
	require.NoError(t, a.Campaign(ctx))
	d := newCandidate(t, c.Client(2), pfx, "d", election.WithTTL(faultTTL))
	dgot := make(chan error, 1)
	go func() { dgot <- d.Campaign(ctx) }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.EqualValues(ct, 2, etcdtest.Count(admin, pfx+"/")) }, 5*time.Second, 10*time.Millisecond)
	r, err := admin.Get(ctx, d.Key())
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	_, err = admin.Revoke(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
	require.NoError(t, err)
	require.NoError(t, a.Resign(ctx))
	require.Error(t, recv(t, dgot, 3*faultTTL, "revoked candidate"), "a candidate whose lease was revoked must not lead")
	assert.False(t, d.IsLeader())
	assert.Zero(t, etcdtest.Count(admin, pfx+"/"))
}

// Guarantee 7 (election half): a canceled Campaign leaves no key behind.
func testCancelCampaign(t *testing.T, c *etcdtest.Cluster) {
	ctx := etcdtest.Context(t, 20*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	admin := c.Client(2)
	a := newCandidate(t, c.Client(0), pfx, "a", election.WithTTL(faultTTL))
	require.NoError(t, a.Campaign(ctx))
	b := newCandidate(t, c.Client(1), pfx, "b", election.WithTTL(faultTTL))
	for i := 0; i < 3; i++ {
		cctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() { got <- b.Campaign(cctx) }()
		require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.EqualValues(ct, 2, etcdtest.Count(admin, pfx+"/")) }, 5*time.Second, 10*time.Millisecond)
		cancel()
		assert.ErrorIs(t, recv(t, got, 5*time.Second, "canceled Campaign"), context.Canceled)
		assert.EqualValues(t, 1, etcdtest.Count(admin, pfx+"/"), "candidate key left behind")
	}
	require.NoError(t, a.Resign(ctx))
}

type write struct {
	id   string
	sent time.Time
	rev  int64
	// others lists the candidates whose leader context was still live when the write
	// was sent.
	others []string
}

// Guarantee 8: blackhole the leading candidate's connection: its leader context is
// canceled, and its guarded writes fail, before another candidate's writes can succeed.
func testBlackholeLeader(t *testing.T, c *etcdtest.Cluster) {
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	var (
		mu       sync.Mutex
		writes   []write
		canceled = map[string]time.Time{}
		terms    = map[string]context.Context{} // each candidate's last leader context
		elected  = make(chan string, 10)
	)
	// liveOthers lists the candidates other than id whose leader context is live now.
	liveOthers := func(id string) []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for other, lctx := range terms {
			if other != id && lctx.Err() == nil {
				out = append(out, other)
			}
		}
		return out
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	cands := map[string]*election.Candidate{}
	member := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("c%d", i)
		cand := newCandidate(t, c.Client(i), pfx, id, election.WithTTL(faultTTL))
		cands[id], member[id] = cand, i
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = cand.Run(runCtx, func(leaderCtx context.Context) error {
				mu.Lock()
				terms[id] = leaderCtx
				mu.Unlock()
				elected <- id
				for n := 0; leaderCtx.Err() == nil; n++ {
					// Whose leader context is live as this write goes out: found then, not
					// from timestamps each taken whenever a goroutine is next scheduled.
					others := liveOthers(id)
					sent := time.Now()
					resp, err := cand.Do(leaderCtx, clientv3.OpPut(fmt.Sprintf("%s-w/%s/%d", pfx, id, n), id))
					if err == nil {
						mu.Lock()
						writes = append(writes, write{id: id, sent: sent, rev: resp.Header.Revision, others: others})
						mu.Unlock()
					}
					select {
					case <-leaderCtx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
				mu.Lock()
				canceled[id] = time.Now()
				mu.Unlock()
				return leaderCtx.Err()
			})
		}()
	}
	first := recv(t, elected, 10*time.Second, "first leader")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(writes) > 3
	}, 5*time.Second, 10*time.Millisecond)

	c.Blackhole(member[first])
	defer c.Unblackhole(member[first])
	blackholed := time.Now()
	second := recv(t, elected, 5*faultTTL, "second leader")
	require.NotEqual(t, first, second)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range writes {
			if w.id == second {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
	_, err := cands[first].Do(ctx, clientv3.OpPut(pfx+"-late", first))
	assert.ErrorIs(t, err, election.ErrNotLeader, "the cut-off leader's writes fail")

	mu.Lock()
	cancelAt, ok := canceled[first]
	var lastOld, firstNew write
	for _, w := range writes {
		if w.id == first {
			lastOld = w
		}
		if w.id == second && firstNew.id == "" {
			firstNew = w
		}
	}
	mu.Unlock()
	require.True(t, ok, "the cut-off leader's context was canceled")
	t.Logf("leader context canceled %v after the blackhole; new leader's first write sent %v after it",
		cancelAt.Sub(blackholed), firstNew.sent.Sub(cancelAt))
	assert.NotContains(t, firstNew.others, first, "old leader canceled before the new leader wrote")
	assert.Less(t, lastOld.rev, firstNew.rev)
	// No write of the old leader was applied after the new leader's first.
	r, err := c.Client(member[second]).Get(ctx, pfx+"-w/"+first+"/", clientv3.WithPrefix())
	require.NoError(t, err)
	for _, kv := range r.Kvs {
		assert.Less(t, kv.ModRevision, firstNew.rev, "old leader's write %s applied after the new leader's", kv.Key)
	}
	c.Unblackhole(member[first])
	stop()
	wg.Wait()
}

type interval struct {
	id         string
	start, end time.Time
}

// Guarantee 9: a LeaderTask on 3 candidates: recorded run intervals never overlap,
// across failovers (a leader cut off, a leader's client crashing).
func testLeaderTaskFailovers(t *testing.T, c *etcdtest.Cluster) {
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	var (
		mu        sync.Mutex
		intervals []interval
		running   = map[string]bool{}
	)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	clients := map[string]*clientv3.Client{}
	member := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("t%d", i)
		cli := c.Client(i)
		clients[id], member[id] = cli, i
		cand := newCandidate(t, cli, pfx, id, election.WithTTL(faultTTL))
		task, err := election.NewLeaderTask(cand, 50*time.Millisecond, func(ctx context.Context) error {
			iv := interval{id: id, start: time.Now()}
			mu.Lock()
			running[id] = true
			mu.Unlock()
			_, err := cand.Do(ctx, clientv3.OpPut(pfx+"-last", id))
			iv.end = time.Now()
			mu.Lock()
			running[id] = false
			intervals = append(intervals, iv)
			mu.Unlock()
			return err
		})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = task.Run(runCtx)
		}()
	}
	leader := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(intervals) == 0 {
			return ""
		}
		return intervals[len(intervals)-1].id
	}
	runsSince := func(id string, since time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, iv := range intervals {
			if iv.id == id && iv.start.After(since) {
				n++
			}
		}
		return n
	}
	ranSince := func(id string, since time.Time) bool { return runsSince(id, since) >= 3 }
	start := time.Now()
	require.Eventually(t, func() bool { return leader() != "" && ranSince(leader(), start) }, 10*time.Second, 10*time.Millisecond)

	// Failover 1: the leader is cut off from etcd.
	l1 := leader()
	c.Blackhole(member[l1])
	defer c.Unblackhole(member[l1])
	at := time.Now()
	var l2 string
	require.Eventually(t, func() bool {
		l2 = leader()
		return l2 != l1 && ranSince(l2, at)
	}, 5*faultTTL, 20*time.Millisecond, "a new leader runs the task")
	c.Unblackhole(member[l1])

	// Failover 2: the leader's client crashes (closes without resigning).
	require.NoError(t, clients[l2].Close())
	at = time.Now()
	require.Eventually(t, func() bool {
		l3 := leader()
		return l3 != l2 && ranSince(l3, at)
	}, 5*faultTTL, 20*time.Millisecond, "a new leader runs the task after a crash")
	stop()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	sort.Slice(intervals, func(i, j int) bool { return intervals[i].start.Before(intervals[j].start) })
	var maxEnd time.Time
	var maxID string
	for _, iv := range intervals {
		if iv.id != maxID && !maxEnd.IsZero() {
			require.True(t, iv.start.After(maxEnd), "run of %s at %v overlaps a run of %s ending %v", iv.id, iv.start, maxID, maxEnd)
		}
		if iv.end.After(maxEnd) {
			maxEnd, maxID = iv.end, iv.id
		}
	}
	t.Logf("%d runs, no overlap", len(intervals))
}

// The Observer re-reads after its watch falls behind a compaction.
func testObserverResync(t *testing.T, c *etcdtest.Cluster) {
	ctx := etcdtest.Context(t, 30*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	obs, err := election.NewObserver(c.Client(0), pfx)
	require.NoError(t, err)
	defer obs.Close()
	assert.False(t, recv(t, obs.Changes(), 5*time.Second, "initial").Elected())

	a := newCandidate(t, c.Client(1), pfx, "a", election.WithTTL(faultTTL))
	b := newCandidate(t, c.Client(2), pfx, "b", election.WithTTL(faultTTL))
	require.NoError(t, a.Campaign(ctx))
	assert.Equal(t, "a", recv(t, obs.Changes(), 5*time.Second, "a").ID)

	c.PauseConnections(0)
	defer c.ResumeConnections(0)
	require.NoError(t, a.Resign(ctx))
	require.NoError(t, b.Campaign(ctx))
	for i := 0; i < 5; i++ {
		_, err := c.Client(2).Put(ctx, pfx+"-noise", "x")
		require.NoError(t, err)
	}
	r, err := c.Client(2).Get(ctx, pfx+"-noise")
	require.NoError(t, err)
	_, err = c.Client(2).Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	c.ResumeConnections(0)
	var l election.Leader
	require.Eventually(t, func() bool {
		select {
		case l = <-obs.Changes():
			return l.ID == "b"
		default:
			return false
		}
	}, 10*time.Second, 10*time.Millisecond, "observer reports b after the compaction")
	assert.Equal(t, b.Token(), l.Token)
}

// Guarantee 6 (election half): stop the etcd leader while a candidate leads: it keeps
// leading, and guarded writes succeed once a new etcd leader is elected.
func testStopEtcdLeader(t *testing.T, c *etcdtest.Cluster) {
	ctx := etcdtest.Context(t, 30*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	lead := c.Leader()
	member := (lead + 1) % 3
	cand := newCandidate(t, c.Client(member), pfx, "a", election.WithTTL(5*time.Second))
	require.NoError(t, cand.Campaign(ctx))
	done := cand.Done()
	tok := cand.Token()

	c.StopLeaderWhileHeld(t, func(ctx context.Context) error {
		_, err := cand.Do(ctx, clientv3.OpPut(pfx+"-x", "after"))
		return err
	}, func(err error) bool { return errors.Is(err, election.ErrNotLeader) }, done)
	assert.True(t, cand.IsLeader())
	assert.Equal(t, tok, cand.Token())
	require.NoError(t, cand.Resign(ctx))
}
