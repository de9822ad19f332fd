package watch

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// ClusterMu lets one of the package's parallel tests at a time run an etcdtest cluster
// (the etcd test framework keeps global state while one runs); exported for the
// external tests.
var ClusterMu sync.Mutex

// withClock replaces the clock of a Watcher or Cache.
func withClock(now func() time.Time) Option { return optionFunc(func(o *options) { o.now = now }) }

// steppedClock is time.Now after someone stepped the system clock by step: the wall
// reading moves, the monotonic reading does not.
type steppedClock struct{ step atomic.Int64 }

func (c *steppedClock) now() time.Time { return stepWall(time.Now(), time.Duration(c.step.Load())) }

// timeLayout mirrors time.Time (time/time.go): wall holds the hasMonotonic flag, 33 bits
// of seconds since 1885 and 30 bits of nanoseconds; ext the monotonic reading.
type timeLayout struct {
	wall uint64
	ext  int64
	loc  *time.Location
}

// stepWall moves t's wall reading by d (whole seconds) and keeps its monotonic reading.
func stepWall(t time.Time, d time.Duration) time.Time {
	p := (*timeLayout)(unsafe.Pointer(&t))
	secs := int64(d / time.Second)
	if secs >= 0 {
		p.wall += uint64(secs) << 30
	} else {
		p.wall -= uint64(-secs) << 30
	}
	return t
}

func TestSteppedClockIsFaithful(t *testing.T) {
	now := time.Now()
	for _, d := range []time.Duration{time.Hour, -time.Hour} {
		u := stepWall(now, d)
		require.Equal(t, int64(d/time.Second), u.Unix()-now.Unix(), "wall reading moved")
		require.Zero(t, u.Sub(now), "monotonic reading kept")
	}
}

// Issue 15 item 5: silence is timed on the monotonic clock. A wall clock stepped forward
// must not abandon a healthy watch or report it stale; stepped back, it must not hide
// that etcd went silent.
func TestSilenceTimingIgnoresClockSteps(t *testing.T) {
	t.Parallel() // waits out silence intervals; its own prefix and cluster
	t.Run("StepForward", func(t *testing.T) {
		// The default interval: a loaded machine can take a few hundred milliseconds to
		// answer a progress request, and that is not silence.
		const interval = 500 * time.Millisecond
		cli := etcdtest.Client(t)
		ctx := etcdtest.Context(t, 20*time.Second)
		p := etcdtest.Prefix(t)
		clk := &steppedClock{}
		c, err := NewCache(cli, p, WithProgressInterval(interval), withClock(clk.now))
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.WaitReady(ctx))
		require.Eventually(t, func() bool { return !c.Stale() }, 5*time.Second, 10*time.Millisecond)
		// On a quiet store etcd still confirms the watch: it stays fresh.
		assert.Never(t, c.Stale, reopenSilence*interval, interval/10, "a quiet healthy watch is not stale")
		assert.Zero(t, c.s.abandoned.Load(), "a quiet healthy watch is not abandoned")

		clk.step.Store(int64(time.Hour))
		assert.Never(t, c.Stale, reopenSilence*interval, interval/10, "a healthy watch is not stale after a step forward")
		assert.Zero(t, c.s.abandoned.Load(), "a healthy watch is not abandoned after a step forward")
		r, err := cli.Put(ctx, p+"k", "v")
		require.NoError(t, err)
		assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.GreaterOrEqual(ct, c.Revision(), r.Header.Revision)
		}, 10*time.Second, 10*time.Millisecond)
	})

	t.Run("StepBackward", func(t *testing.T) {
		const interval = 100 * time.Millisecond
		ClusterMu.Lock()
		t.Cleanup(ClusterMu.Unlock) // after the cluster's own cleanups
		cl := etcdtest.NewCluster(t, 1)
		ctx := etcdtest.Context(t, 30*time.Second)
		clk := &steppedClock{}
		c, err := NewCache(cl.Client(0), "/step-back/", WithProgressInterval(interval), withClock(clk.now))
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.WaitReady(ctx))
		// The watch is open and delivering.
		r, err := cl.Client(0).Put(ctx, "/step-back/k", "v")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return c.Revision() >= r.Header.Revision && !c.Stale() }, 10*time.Second, 10*time.Millisecond)

		// etcd goes silent and the Cache says so; then the clock steps back, so that the
		// last word from etcd looks like it came from the future.
		cl.Blackhole(0)
		defer cl.Unblackhole(0)
		require.Eventually(t, c.Stale, 3*(staleSilence+1)*interval, interval/4)
		clk.step.Store(int64(-time.Hour))
		assert.Never(t, func() bool { return !c.Stale() }, 10*interval, interval/4, "still stale after the step back")
		// Abandoned after six silent intervals; deadline 3x.
		assert.Eventually(t, func() bool { return c.s.abandoned.Load() > 0 }, 3*(reopenSilence+1)*interval, interval/4,
			"a silent watch is abandoned despite the step back")
	})
}

// A watch of someone else on the same client, which etcd cannot confirm (it starts at a
// future revision), must not make ours look silent: each stream has a gRPC stream of
// its own, so progress requests answer for our watch alone.
func TestQuietWatchBesideAnUnconfirmableOne(t *testing.T) {
	// Waits out silence intervals; its own prefix.
	t.Parallel()
	const interval = 500 * time.Millisecond // the default
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	r, err := cli.Get(ctx, "/")
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	other := cli.Watch(wctx, p+"other", clientv3.WithRev(r.Header.Revision+1000))
	c, err := NewCache(cli, p+"mine/", WithProgressInterval(interval))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(ctx))
	require.Eventually(t, func() bool { return !c.Stale() }, 5*time.Second, 10*time.Millisecond)
	assert.Never(t, c.Stale, reopenSilence*interval, interval/10, "a quiet healthy watch is not stale")
	assert.Zero(t, c.s.abandoned.Load(), "a quiet healthy watch is not abandoned")
	cancel()
	for range other {
	}
}
