package ratelimit_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/ratelimit"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestRejectsBadInput(t *testing.T) {
	cli := etcdtest.Client(t)
	for name, f := range map[string]func() error{
		"nil client": func() error { _, err := ratelimit.New(nil, "/r", 1, time.Second); return err },
		"empty key":  func() error { _, err := ratelimit.New(cli, "", 1, time.Second); return err },
		"limit":      func() error { _, err := ratelimit.New(cli, "/r", 0, time.Second); return err },
		"period":     func() error { _, err := ratelimit.New(cli, "/r", 1, 0); return err },
		"nil option": func() error { _, err := ratelimit.New(cli, "/r", 1, time.Second, nil); return err },
		"burst":      func() error { _, err := ratelimit.New(cli, "/r", 1, time.Second, ratelimit.WithBurst(0)); return err },
		"batch":      func() error { _, err := ratelimit.New(cli, "/r", 10, time.Second, ratelimit.WithBatch(0)); return err },
		"batch>burst": func() error {
			_, err := ratelimit.New(cli, "/r", 10, time.Second, ratelimit.WithBatch(11))
			return err
		},
		// The bucket's level is a float64: past 2^53 tokens, taking one leaves it as it
		// was, and past MaxInt64 its level does not even convert back to a count.
		"huge limit": func() error { _, err := ratelimit.New(cli, "/r", math.MaxInt, time.Second); return err },
		"huge burst": func() error {
			_, err := ratelimit.New(cli, "/r", 1, time.Second, ratelimit.WithBurst(1<<53+1))
			return err
		},
		"logger": func() error {
			_, err := ratelimit.New(cli, "/r", 1, time.Second, ratelimit.WithLogger(nil))
			return err
		},
	} {
		assert.ErrorIs(t, f(), ratelimit.ErrInvalidArgument, name)
	}
}

func TestInstancesShareTheBucket(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "api"
	// 10 an hour: nothing refills during the test.
	a, err := ratelimit.New(etcdtest.Client(t), key, 10, time.Hour, ratelimit.WithBatch(4))
	require.NoError(t, err)
	defer a.Close()
	b, err := ratelimit.New(etcdtest.Client(t), key, 10, time.Hour, ratelimit.WithBatch(4))
	require.NoError(t, err)
	defer b.Close()

	admitted := 0
	for range 20 {
		for _, l := range []*ratelimit.Limiter{a, b} {
			ok, err := l.Allow(ctx)
			require.NoError(t, err)
			if ok {
				admitted++
			}
		}
	}
	assert.Equal(t, 10, admitted, "the burst is the fleet's, not each instance's")
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, a.Wait(wctx), context.DeadlineExceeded)
}

func TestCloseGivesTokensBack(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "api"
	a, err := ratelimit.New(etcdtest.Client(t), key, 4, time.Hour, ratelimit.WithBatch(4))
	require.NoError(t, err)
	ok, err := a.Allow(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 3, a.Tokens(), "the rest of the batch is held locally")
	require.NoError(t, a.Close())
	require.NoError(t, a.Close(), "idempotent")
	_, err = a.Allow(ctx)
	assert.ErrorIs(t, err, ratelimit.ErrClosed)

	b, err := ratelimit.New(etcdtest.Client(t), key, 4, time.Hour, ratelimit.WithBatch(4))
	require.NoError(t, err)
	defer b.Close()
	admitted := 0
	for range 5 {
		ok, err := b.Allow(ctx)
		require.NoError(t, err)
		if ok {
			admitted++
		}
	}
	assert.Equal(t, 3, admitted, "the tokens a closed instance held are spendable again")
}

func TestWaitRefills(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	l, err := ratelimit.New(etcdtest.Client(t), etcdtest.Prefix(t)+"api", 20, time.Second, ratelimit.WithBurst(1), ratelimit.WithBatch(1))
	require.NoError(t, err)
	defer l.Close()
	start := time.Now()
	for range 11 {
		require.NoError(t, l.Wait(ctx))
	}
	// One from the burst, ten refilled at 20/s: at least half a second.
	assert.GreaterOrEqual(t, time.Since(start), 450*time.Millisecond)
}

// An instance that found the bucket empty sees tokens another instance gave back since:
// Allow re-reads the bucket before it says no, once its last read is old enough.
func TestAllowSeesTokensGivenBackMeanwhile(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "api"
	// 10 an hour: nothing refills during the test.
	a, err := ratelimit.New(etcdtest.Client(t), key, 10, time.Hour, ratelimit.WithBatch(5))
	require.NoError(t, err)
	b, err := ratelimit.New(etcdtest.Client(t), key, 10, time.Hour, ratelimit.WithBatch(5))
	require.NoError(t, err)
	defer b.Close()
	ok, err := a.Allow(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 4, a.Tokens(), "a took a batch of 5")
	for range 5 {
		ok, err := b.Allow(ctx) // b takes the other batch: b's last write left the bucket empty
		require.NoError(t, err)
		require.True(t, ok)
	}
	ok, err = b.Allow(ctx)
	require.NoError(t, err)
	require.False(t, ok, "the bucket is empty")
	require.NoError(t, a.Close()) // gives 4 back
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		ok, err := b.Allow(ctx)
		assert.NoError(c, err)
		assert.True(c, ok)
	}, 5*time.Second, 20*time.Millisecond, "4 tokens are in the bucket again")
}
