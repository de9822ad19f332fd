package barrier_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/barrier"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestFaultCluster runs the double barrier's fault checks on one 3-node cluster. Each
// participant has a client of its own, on a member of its own.
func TestFaultCluster(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	const ttl = 2 * time.Second

	// A participant that crashes inside the barrier (after Enter, before Leave) is
	// counted as left once its lease expires: the others' Leave returns then, not never.
	t.Run("CrashInsideDoesNotBlockLeave", func(t *testing.T) {
		ctx := etcdtest.Context(t, time.Minute)
		key := etcdtest.Prefix(t) + "job"
		var bs []*barrier.DoubleBarrier
		for i := range 3 {
			b, err := barrier.NewDouble(c.Client(i), key, 3, barrier.WithTTL(ttl))
			require.NoError(t, err)
			defer b.Close()
			bs = append(bs, b)
		}
		for _, err := range enterAll(ctx, bs) {
			require.NoError(t, err)
		}
		// Participant 2 crashes: its member stops answering it, so its keep-alives stop
		// and nothing revokes its lease.
		c.Blackhole(2)
		defer c.Unblackhole(2)
		crashed := time.Now()

		// A Leave that returns has waited for every key of the round, the crashed
		// participant's too, which goes only with its lease: a read after it finds
		// none. (When, after the crash, etcd may expire that lease depends on when the
		// last renewal landed, which a loaded machine delays.)
		type leaving struct {
			at   time.Time
			keys int64
		}
		left := make(chan leaving, 2)
		admin := c.Client(0)
		var wg sync.WaitGroup
		for _, b := range bs[:2] {
			wg.Go(func() {
				if assert.NoError(t, b.Leave(ctx)) {
					left <- leaving{time.Now(), etcdtest.Count(admin, key+"/waiters/")}
				}
			})
		}
		// Within 3x the TTL of the crash (etcd expires a lease no later than its TTL
		// after the last renewal, which came before the crash).
		for range 2 {
			select {
			case l := <-left:
				t.Logf("left %v after the crash", l.at.Sub(crashed))
				assert.Zero(t, l.keys, "left before the crashed participant was counted out")
			case <-time.After(3 * ttl):
				t.Fatalf("Leave blocked more than %v after a participant crashed", 3*ttl)
			}
		}
		wg.Wait()
	})

	// A participant that crashes while waiting to enter is counted out; a newcomer
	// completes the group with the live ones.
	t.Run("CrashBeforeEnterIsCountedOut", func(t *testing.T) {
		ctx := etcdtest.Context(t, time.Minute)
		key := etcdtest.Prefix(t) + "job"
		crashing, err := barrier.NewDouble(c.Client(2), key, 2, barrier.WithTTL(ttl))
		require.NoError(t, err)
		defer crashing.Close()
		ectx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { _ = crashing.Enter(ectx) }()
		// Wait until it is registered, then cut it off.
		cli := c.Client(0)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			resp, err := cli.Get(ctx, key+"/waiters/", clientv3WithPrefixCount()...)
			assert.NoError(ct, err)
			if resp != nil {
				assert.Equal(ct, int64(1), resp.Count)
			}
		}, 10*time.Second, 10*time.Millisecond)
		c.Blackhole(2)
		defer c.Unblackhole(2)
		<-crashing.Done()
		assert.ErrorIs(t, crashing.Err(), barrier.ErrLost)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			resp, err := cli.Get(ctx, key+"/waiters/", clientv3WithPrefixCount()...)
			assert.NoError(ct, err)
			if resp != nil {
				assert.Zero(ct, resp.Count, "the crashed participant's key expired")
			}
		}, 3*ttl, 20*time.Millisecond)

		// Two live participants now: neither may enter with only one inside.
		a, err := barrier.NewDouble(c.Client(0), key, 2, barrier.WithTTL(ttl))
		require.NoError(t, err)
		defer a.Close()
		b, err := barrier.NewDouble(c.Client(1), key, 2, barrier.WithTTL(ttl))
		require.NoError(t, err)
		defer b.Close()
		actx, acancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer acancel()
		require.ErrorIs(t, a.Enter(actx), context.DeadlineExceeded, "entered with one live participant")
		for _, err := range enterAll(ctx, []*barrier.DoubleBarrier{a, b}) {
			require.NoError(t, err)
		}
		for _, err := range leaveAll(ctx, []*barrier.DoubleBarrier{a, b}) {
			require.NoError(t, err)
		}
	})
}

func leaveAll(ctx context.Context, bs []*barrier.DoubleBarrier) []error {
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() { errs[i] = b.Leave(ctx) })
	}
	wg.Wait()
	return errs
}

func clientv3WithPrefixCount() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
}
