package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/localetcd"
)

// Requests that would crash or starve the daemon or the cluster are refused.
func TestHarmfulConfigsAreRefused(t *testing.T) {
	r := newRunner(t, etcdtest.Client(t))
	ctx := etcdtest.Context(t, 10*time.Second)
	cases := []struct {
		field string
		body  string
	}{
		{"keySize", `{"workload":"write","keySize":4611686018427387904}`},
		{"clients", `{"workload":"write","connections":3,"clients":6148914691236517206}`},
		{"connections", `{"workload":"write","connections":6148914691236517206,"clients":3}`},
		{"clients", `{"workload":"write","connections":101,"clients":100}`},
		{"clients", `{"workload":"write","connections":100,"clients":100,"valueSize":1048576}`},
		{"rangeLimit", `{"workload":"range","rangeLimit":9223372036854775807}`},
		{"clients", `{"workload":"range","rangeLimit":10000,"valueSize":65536}`},
		{"valueSize", `{"workload":"txn","txnOps":128,"valueSize":1048576,"connections":1,"clients":1}`},
		{"ops", `{"workload":"write","ops":9223372036854775807}`},
		{"duration", `{"workload":"write","duration":"2562047h"}`},
		{"opTimeout", `{"workload":"write","opTimeout":"9999h"}`},
		{"rate", `{"workload":"write","rate":1e300}`},
		{"keySpace", `{"workload":"read","keySpace":9223372036854775807}`},
		{"txnOps", `{"workload":"txn","txnOps":-1}`},
	}
	for _, c := range cases {
		var cfg bench.Config
		require.NoError(t, json.Unmarshal([]byte(c.body), &cfg), c.body)
		_, err := r.Run(ctx, cfg)
		var ce *bench.ConfigError
		require.True(t, errors.As(err, &ce), "%s: %v", c.body, err)
		assert.Equal(t, c.field, ce.Field, "%s: %v", c.body, err)
		assert.ErrorIs(t, err, bench.ErrInvalidArgument)
	}
	for name, cfg := range map[string]bench.Config{
		"NaN read ratio": {Workload: bench.Mixed, ReadRatio: math.NaN()},
		"NaN rate":       {Workload: bench.Write, Rate: math.NaN()},
		"infinite rate":  {Workload: bench.Write, Rate: math.Inf(1)},
	} {
		assert.ErrorIs(t, cfg.Validate(), bench.ErrInvalidArgument, name)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	cli := etcdtest.Client(t)
	for name, opts := range map[string][]bench.Option{
		"nil option":          {nil},
		"root prefix":         {bench.WithPrefix("/")},
		"prefix without /":    {bench.WithPrefix("bench")},
		"zero quota share":    {bench.WithQuotaShare(0)},
		"quota share above 1": {bench.WithQuotaShare(1.5)},
		"NaN quota share":     {bench.WithQuotaShare(math.NaN())},
		"zero cleanup":        {bench.WithCleanupTimeout(0)},
		"nil logger":          {bench.WithLogger(nil)},
	} {
		_, err := bench.New(cli, opts...)
		assert.ErrorIs(t, err, bench.ErrInvalidArgument, name)
	}
	_, err := bench.New(nil)
	assert.ErrorIs(t, err, bench.ErrInvalidArgument)
	assert.ErrorIs(t, &bench.ConfigError{Field: "x"}, bench.ErrInvalidArgument)
	assert.EqualError(t, &bench.ConfigError{Field: "x", Reason: "y"}, "bench: invalid argument: x: y", "worded as ErrInvalidArgument")
}

// A run never writes outside the runner's prefix, even when asked to keep its keys.
func TestWritesStayUnderTheRunnerPrefix(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	r, err := bench.New(cli) // DefaultPrefix
	require.NoError(t, err)
	_, err = r.Run(ctx, bench.Config{Workload: bench.Write, Ops: 10, Prefix: "/registry/pods/", KeepKeys: true})
	var ce *bench.ConfigError
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, "prefix", ce.Field)
	got, err := cli.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, got.Count)

	res, err := r.Run(ctx, bench.Config{Workload: bench.Write, Connections: 1, Clients: 2, Ops: 10, Prefix: "/bench/mine/", KeepKeys: true})
	require.NoError(t, err)
	assert.EqualValues(t, 10, res.Ops)
	got, err = cli.Get(ctx, "/bench/mine/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.EqualValues(t, 10, got.Count)
	_, err = cli.Delete(ctx, "/bench/", clientv3.WithPrefix())
	require.NoError(t, err)
}

// quotaNode starts an etcd with a small quota.
func quotaNode(t *testing.T, quota int64) *clientv3.Client {
	t.Helper()
	node, err := localetcd.Start(localetcd.WithQuotaBackendBytes(quota))
	require.NoError(t, err)
	t.Cleanup(func() { node.Close() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: node.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// The quota guard refuses a run that could fill the quota, and stops one bounded by time
// before it does: the cluster never raises NOSPACE.
func TestQuotaGuardRefusesAndStops(t *testing.T) {
	const quota = 8 << 20
	cli := quotaNode(t, quota)
	ctx := etcdtest.Context(t, 60*time.Second)
	r, err := bench.New(cli, bench.WithQuotaShare(0.5))
	require.NoError(t, err)
	before, err := cli.Status(ctx, cli.Endpoints()[0])
	require.NoError(t, err)

	// 200 × 64 KiB = 12.5 MiB: refused before anything is written.
	_, err = r.Run(ctx, bench.Config{Workload: bench.Write, Connections: 1, Clients: 4, Ops: 200, ValueSize: 64 << 10})
	require.ErrorIs(t, err, bench.ErrQuota)
	assert.Contains(t, err.Error(), "50% of its 8388608-byte quota")
	after, err := cli.Status(ctx, cli.Endpoints()[0])
	require.NoError(t, err)
	assert.Equal(t, before.Header.Revision, after.Header.Revision, "nothing was written")

	// The same writes bounded by time: stopped before the share is passed.
	res, err := r.Run(ctx, bench.Config{Workload: bench.Write, Connections: 1, Clients: 4, Duration: 30 * time.Second, ValueSize: 64 << 10})
	require.NoError(t, err)
	assert.Contains(t, res.Stopped, "quota guard: stopped before a write that could take a member's database past 50% of its quota")
	assert.Positive(t, res.Successes)
	assert.Zero(t, res.Failures, "errors: %v", res.Errors)
	assert.Less(t, res.Elapsed, 30*time.Second, "stopped, not timed out")
	st, err := cli.Status(ctx, cli.Endpoints()[0])
	require.NoError(t, err)
	assert.LessOrEqual(t, st.DbSize, int64(quota/2), "the database stays under the share")
	alarms, err := cli.AlarmList(ctx)
	require.NoError(t, err)
	assert.Empty(t, alarms.Alarms, "no NOSPACE")
	got, err := cli.Get(ctx, bench.DefaultPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, got.Count, "cleaned up")

	// A populate that alone could pass the share is refused too.
	_, err = r.Run(ctx, bench.Config{Workload: bench.Read, Connections: 1, Clients: 1, Ops: 1, KeySpace: 100, ValueSize: 64 << 10})
	require.ErrorIs(t, err, bench.ErrQuota)
}

// A run cancelled in the middle, setup included, returns at once with ctx's error and
// leaves no key behind.
func TestCancelledRunCleansUp(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t)
	r := newRunner(t, cli)
	// count fails tt (not stopping it) when etcd does not answer, so it may run in a
	// condition of EventuallyWithT.
	count := func(tt assert.TestingT) int64 {
		got, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if !assert.NoError(tt, err) {
			return -1
		}
		return got.Count
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Run(cancelled, bench.Config{Workload: bench.Read, KeySpace: 1000, Prefix: prefix, KeySize: 128})
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, count(t))

	for name, cfg := range map[string]bench.Config{
		"during setup":  {Workload: bench.Read, Connections: 2, Clients: 2, KeySpace: 500000, ValueSize: 1, Prefix: prefix, KeySize: 128, Duration: time.Minute},
		"while running": {Workload: bench.Write, Connections: 2, Clients: 2, Duration: time.Minute, Prefix: prefix, KeySize: 128},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := r.Run(ctx, cfg)
			done <- err
		}()
		assert.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Positive(ct, count(ct)) }, 30*time.Second, 5*time.Millisecond, name)
		cancel()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, context.Canceled, name)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: Run did not return after cancel", name)
		}
		assert.Zero(t, count(t), "%s: keys left behind", name)
	}
}

// Cleanup is bounded in time: a run cancelled while its cluster swallows every request
// returns within the operation timeout plus the cleanup timeout (the keys it could not
// delete are logged).
func TestCleanupIsBoundedWhenTheClusterHangs(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(0) // through the bridge that Blackhole cuts
	direct := c.Client(0)
	r, err := bench.New(cli, bench.WithCleanupTimeout(500*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, bench.Config{Workload: bench.Write, Connections: 1, Clients: 2, Duration: time.Minute, OpTimeout: 500 * time.Millisecond})
		done <- err
	}()
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		got, err := direct.Get(etcdtest.Context(t, 5*time.Second), bench.DefaultPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if assert.NoError(ct, err) {
			assert.Positive(ct, got.Count)
		}
	}, 30*time.Second, 5*time.Millisecond)
	c.Blackhole(0)
	cancel()
	// The bound is 0.5s (an operation in flight) + 0.5s (cleanup); the deadline is 3x.
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return within its operation and cleanup timeouts")
	}
	c.Unblackhole(0)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) { // the connection comes back
		_, err := direct.Delete(etcdtest.Context(t, 5*time.Second), bench.DefaultPrefix, clientv3.WithPrefix())
		assert.NoError(ct, err)
	}, 30*time.Second, 50*time.Millisecond)
}
