package election_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/election"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func newCandidate(t *testing.T, cli *clientv3.Client, pfx, id string, opts ...election.Option) *election.Candidate {
	t.Helper()
	c, err := election.New(cli, pfx, id, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func recv[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		var zero T
		return zero
	}
}

func TestBadInput(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	pfx := etcdtest.Prefix(t) + "e"

	_, err := election.New(nil, pfx, "a")
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	_, err = election.New(cli, "", "a")
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	_, err = election.New(cli, pfx, "")
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	_, err = election.New(cli, pfx, "a", election.WithTTL(time.Millisecond))
	assert.ErrorContains(t, err, "TTL")
	_, err = election.New(cli, pfx, "a", nil)
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	// An option the constructor would ignore is an error.
	_, err = election.NewObserver(cli, pfx, election.OnElected(func(int64) {}))
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	assert.ErrorContains(t, err, "OnElected")
	_, err = election.NewObserver(cli, pfx, election.WithTTL(time.Second))
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	_, err = election.NewObserver(nil, pfx)
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	_, err = election.NewObserver(cli, "/")
	assert.ErrorIs(t, err, election.ErrInvalidArgument)

	c := newCandidate(t, cli, pfx, "a")
	assert.ErrorIs(t, c.Resign(ctx), election.ErrNotLeader, "Resign when not leader")
	_, err = c.Do(ctx, clientv3.OpPut(pfx+"x", "v"))
	assert.ErrorIs(t, err, election.ErrNotLeader)
	assert.False(t, c.IsLeader())
	assert.Zero(t, c.Token())
	_, err = c.Leader(ctx)
	assert.ErrorIs(t, err, election.ErrNoLeader)
	assert.ErrorIs(t, c.Run(ctx, nil), election.ErrInvalidArgument)
	//nolint:staticcheck // a nil context is the bad input under test
	assert.ErrorIs(t, c.Campaign(nil), election.ErrInvalidArgument)
	resp, err := cli.Txn(ctx).If(c.LeaderCmp()).Commit()
	require.NoError(t, err)
	assert.False(t, resp.Succeeded)

	_, err = election.NewLeaderTask(nil, time.Second, func(context.Context) error { return nil })
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	_, err = election.NewLeaderTask(c, 0, func(context.Context) error { return nil })
	assert.ErrorIs(t, err, election.ErrInvalidArgument)
	_, err = election.NewLeaderTask(c, time.Second, nil)
	assert.ErrorIs(t, err, election.ErrInvalidArgument)

	require.NoError(t, c.Campaign(ctx))
	require.NoError(t, c.Campaign(ctx), "Campaign on a leader")
	require.NoError(t, c.Resign(ctx))
	assert.ErrorIs(t, c.Resign(ctx), election.ErrNotLeader, "second Resign")
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	assert.ErrorIs(t, c.Campaign(ctx), election.ErrClosed)
}

func TestCampaignResign(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	var mu sync.Mutex
	var events []string
	record := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	a := newCandidate(t, cli, pfx, "a",
		election.OnElected(func(int64) { record("a elected") }),
		election.OnDefeat(func(err error) { record("a defeated") }))
	b := newCandidate(t, cli, pfx, "b")

	require.NoError(t, a.Campaign(ctx))
	assert.True(t, a.IsLeader())
	done := a.Done()
	l, err := b.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "a", l.ID)
	assert.Equal(t, a.Token(), l.Token)

	got := make(chan error, 1)
	go func() { got <- b.Campaign(ctx) }()
	require.Eventually(t, func() bool {
		r, err := cli.Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 2
	}, 5*time.Second, 10*time.Millisecond)
	assert.False(t, b.IsLeader())
	tokA := a.Token()
	_, err = a.Do(ctx, clientv3.OpPut(pfx+"-owner", "a"))
	require.NoError(t, err)

	require.NoError(t, a.Resign(ctx))
	recv(t, done, time.Second, "Done after Resign")
	assert.NoError(t, a.Err())
	require.NoError(t, recv(t, got, 5*time.Second, "b's Campaign"))
	assert.Greater(t, b.Token(), tokA)
	_, err = a.Do(ctx, clientv3.OpPut(pfx+"-owner", "a"))
	assert.ErrorIs(t, err, election.ErrNotLeader)
	l, err = a.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "b", l.ID)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 2
	}, 2*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"a elected", "a defeated"}, events)
}

func TestObserver(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	obs, err := election.NewObserver(cli, pfx)
	require.NoError(t, err)
	defer obs.Close()
	assert.False(t, recv(t, obs.Changes(), 5*time.Second, "initial").Elected(), "no leader at first")

	a := newCandidate(t, cli, pfx, "a")
	b := newCandidate(t, cli, pfx, "b")
	require.NoError(t, a.Campaign(ctx))
	assert.Equal(t, "a", recv(t, obs.Changes(), 5*time.Second, "a").ID)
	go func() { _ = b.Campaign(ctx) }()
	require.Eventually(t, func() bool {
		r, err := cli.Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 2
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, a.Resign(ctx))
	l := recv(t, obs.Changes(), 5*time.Second, "b")
	assert.Equal(t, "b", l.ID)
	assert.Equal(t, b.Key(), l.Key)
	require.Eventually(t, b.IsLeader, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, b.Resign(ctx))
	assert.False(t, recv(t, obs.Changes(), 5*time.Second, "no leader").Elected(), "no leader after the last resigned")
	assert.NoError(t, obs.Err())

	require.NoError(t, obs.Close())
	assert.ErrorIs(t, obs.Err(), election.ErrClosed)
	_, open := <-obs.Changes()
	assert.False(t, open, "Changes closed after Close")
}

func TestRun(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	var leaders []election.Leader
	var mu sync.Mutex
	c := newCandidate(t, cli, pfx, "a", election.WithTTL(2*time.Second),
		election.OnNewLeader(func(l election.Leader) { mu.Lock(); leaders = append(leaders, l); mu.Unlock() }))

	runCtx, stop := context.WithCancel(ctx)
	terms := make(chan context.Context, 4)
	ran := make(chan error, 1)
	go func() {
		ran <- c.Run(runCtx, func(leaderCtx context.Context) error {
			terms <- leaderCtx
			<-leaderCtx.Done()
			return leaderCtx.Err()
		})
	}()
	first := recv(t, terms, 5*time.Second, "first term")
	key := c.Key()
	r, err := cli.Get(ctx, key)
	require.NoError(t, err)
	// Losing the lease cancels the leader context; Run campaigns again on a new lease.
	_, err = cli.Revoke(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
	require.NoError(t, err)
	recv(t, first.Done(), 2*time.Second, "leader context canceled after the revoke")
	second := recv(t, terms, 10*time.Second, "second term")
	assert.NoError(t, second.Err())
	assert.NotEqual(t, key, c.Key())

	stop()
	assert.ErrorIs(t, recv(t, ran, 5*time.Second, "Run returns"), context.Canceled)
	r, err = cli.Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, r.Count, "Run resigns on the way out")
	mu.Lock()
	seen := append([]election.Leader(nil), leaders...)
	mu.Unlock()
	require.NotEmpty(t, seen)
	found := false
	for _, l := range seen {
		found = found || (l.ID == "a" && l.Key == key)
	}
	assert.True(t, found, "OnNewLeader saw the first term: %v", seen)

	// fn returning while leader: Run resigns and returns fn's error.
	boom := errors.New("boom")
	assert.ErrorIs(t, c.Run(ctx, func(context.Context) error { return boom }), boom)
	assert.False(t, c.IsLeader())
}

func TestLeaderTaskRunsOnlyOnLeader(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	pfx := etcdtest.Prefix(t) + "e"
	a := newCandidate(t, cli, pfx, "a")
	b := newCandidate(t, cli, pfx, "b")
	require.NoError(t, a.Campaign(ctx))

	runs := make(chan struct{}, 100)
	task, err := election.NewLeaderTask(b, 20*time.Millisecond, func(ctx context.Context) error {
		runs <- struct{}{}
		return nil
	})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- task.Run(runCtx) }()
	require.Eventually(t, func() bool {
		r, err := cli.Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 2
	}, 5*time.Second, 10*time.Millisecond)
	select {
	case <-runs:
		t.Fatal("task ran on a follower")
	default:
	}
	require.NoError(t, a.Resign(ctx))
	recv(t, runs, 5*time.Second, "task on the new leader")
	recv(t, runs, 5*time.Second, "task again after an interval")
	stop()
	assert.ErrorIs(t, recv(t, ran, 5*time.Second, "task stops"), context.Canceled)
}
