package bench_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func newRunner(t *testing.T, cli *clientv3.Client, opts ...bench.Option) *bench.Runner {
	t.Helper()
	r, err := bench.New(cli, append([]bench.Option{bench.WithPrefix("/etcdtest/")}, opts...)...)
	require.NoError(t, err)
	return r
}

// checkCounts asserts the invariants every result keeps.
func checkCounts(t *testing.T, res *bench.Result) {
	t.Helper()
	assert.Equal(t, res.Ops, res.Successes+res.Failures, "successes + failures = ops")
	var inBuckets int64
	for _, b := range res.Buckets {
		inBuckets += b.Count
	}
	assert.Equal(t, res.Successes, inBuckets, "every success is in one bucket")
	assert.Len(t, res.Buckets, 7)
	var errs int64
	for _, n := range res.Errors {
		errs += n
	}
	assert.Equal(t, res.Failures, errs, "every failure has a kind")
	var kinds int64
	if res.Reads != nil {
		kinds += res.Reads.Ops
		assert.Equal(t, res.Reads.Ops, res.Reads.Successes+res.Reads.Failures)
	}
	if res.Writes != nil {
		kinds += res.Writes.Ops
		assert.Equal(t, res.Writes.Ops, res.Writes.Successes+res.Writes.Failures)
	}
	assert.Equal(t, res.Ops, kinds, "reads + writes = ops")
	if res.Successes > 0 {
		l := res.Latency
		assert.Positive(t, l.Min)
		assert.LessOrEqual(t, l.Min, l.P50)
		assert.LessOrEqual(t, l.P50, l.P90)
		assert.LessOrEqual(t, l.P90, l.P95)
		assert.LessOrEqual(t, l.P95, l.P99)
		assert.LessOrEqual(t, l.P99, l.P999)
		assert.LessOrEqual(t, l.Mean, l.Max)
		assert.Positive(t, res.Throughput)
	}
}

func TestWorkloadsCountsAddUp(t *testing.T) {
	cli := etcdtest.Client(t)
	r := newRunner(t, cli)
	ctx := etcdtest.Context(t, 60*time.Second)
	prefix := etcdtest.Prefix(t)
	for _, w := range bench.Workloads {
		t.Run(string(w), func(t *testing.T) {
			res, err := r.Run(ctx, bench.Config{Workload: w, Connections: 2, Clients: 5, Ops: 300, KeySpace: 100, Prefix: prefix, KeySize: 64})
			require.NoError(t, err)
			assert.Equal(t, w, res.Workload)
			assert.EqualValues(t, 300, res.Ops)
			assert.Zero(t, res.Failures, "errors: %v", res.Errors)
			checkCounts(t, res)
			assert.Equal(t, w == bench.Read || w == bench.Mixed || w == bench.Range, res.Reads != nil, "reads")
			assert.Equal(t, w != bench.Read && w != bench.Range, res.Writes != nil, "writes")
			if w == bench.Mixed {
				// 70/30 of 300 ops; 3.5 standard deviations either side.
				assert.InDelta(t, 210, res.Reads.Ops, 28)
			}
			got, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
			require.NoError(t, err)
			assert.Zero(t, got.Count, "the run's keys are deleted")
		})
	}
}

func TestWriteKeysAreSequentialAndSized(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	prefix := etcdtest.Prefix(t)
	res, err := newRunner(t, cli).Run(ctx, bench.Config{Workload: bench.Write, Connections: 1, Clients: 3, Ops: 50,
		KeySize: 80, ValueSize: 100, Prefix: prefix, KeepKeys: true})
	require.NoError(t, err)
	checkCounts(t, res)
	got, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, got.Kvs, 50)
	for i, kv := range got.Kvs {
		assert.Len(t, kv.Key, 80)
		assert.Len(t, kv.Value, 100)
		assert.True(t, strings.HasSuffix(string(kv.Key), strings.Repeat("0", 2)+padded(i)), "key %d is %s", i, kv.Key)
	}
}

func padded(i int) string {
	s := "000" + string(rune('0'+i/10)) + string(rune('0'+i%10))
	return s[len(s)-4:]
}

func TestDurationBoundRun(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	res, err := newRunner(t, etcdtest.Client(t)).Run(ctx, bench.Config{Workload: bench.Read, Connections: 2, Clients: 2, Duration: 300 * time.Millisecond, KeySpace: 50})
	require.NoError(t, err)
	checkCounts(t, res)
	assert.Positive(t, res.Ops)
	assert.GreaterOrEqual(t, res.Elapsed, 300*time.Millisecond) // and it ended well before ctx
}

func TestFailuresAreCountedNotFatal(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	// No write finishes in a nanosecond: every operation fails with a timeout.
	res, err := newRunner(t, etcdtest.Client(t)).Run(ctx, bench.Config{Workload: bench.Write, Connections: 1, Clients: 4, Ops: 40, OpTimeout: time.Nanosecond})
	require.NoError(t, err)
	checkCounts(t, res)
	assert.EqualValues(t, 40, res.Ops)
	assert.EqualValues(t, 40, res.Failures)
	assert.EqualValues(t, 40, res.Errors["timeout"])
	assert.Zero(t, res.Latency)
}

func TestRateLimitHolds(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	const rate = 200
	res, err := newRunner(t, etcdtest.Client(t)).Run(ctx, bench.Config{Workload: bench.Write, Connections: 2, Clients: 10, Ops: 300, Rate: rate})
	require.NoError(t, err)
	checkCounts(t, res)
	// The limit is a ceiling: a loaded machine may not reach it, never exceed it.
	assert.LessOrEqual(t, res.Throughput, rate*1.1, "throughput %.1f ops/s", res.Throughput)
	assert.GreaterOrEqual(t, res.Elapsed, time.Duration(float64(res.Ops)/(rate*1.1)*float64(time.Second)), "300 ops at 200/s take 1.5 s at least")
}

func TestSerializableReads(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	res, err := newRunner(t, etcdtest.Client(t)).Run(ctx, bench.Config{Workload: bench.Range, Connections: 1, Clients: 2, Ops: 100, KeySpace: 30, RangeLimit: 5, Consistency: bench.Serializable})
	require.NoError(t, err)
	checkCounts(t, res)
	assert.Zero(t, res.Failures)
}

func TestProgress(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	var out bytes.Buffer
	r := newRunner(t, etcdtest.Client(t), bench.WithProgress(&out, 50*time.Millisecond))
	_, err := r.Run(ctx, bench.Config{Workload: bench.Write, Connections: 1, Clients: 2, Ops: 100})
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 10, "a line per 10%% off a terminal:\n%s", out.String())
	assert.NotContains(t, out.String(), "\r", "no carriage returns off a terminal")
	for i, l := range lines {
		assert.Contains(t, l, fmt.Sprintf("%3d%%", (i+1)*10), l)
	}
	assert.Contains(t, lines[len(lines)-1], "bench write: 100 ops")
}

func TestConfigErrors(t *testing.T) {
	r := newRunner(t, etcdtest.Client(t))
	ctx := etcdtest.Context(t, 10*time.Second)
	cases := []struct {
		field string
		cfg   bench.Config
	}{
		{"workload", bench.Config{}},
		{"workload", bench.Config{Workload: "scan"}},
		{"ops", bench.Config{Workload: bench.Write, Ops: -1}},
		{"duration", bench.Config{Workload: bench.Write, Duration: -time.Second}},
		{"connections", bench.Config{Workload: bench.Write, Connections: -1}},
		{"clients", bench.Config{Workload: bench.Write, Clients: -2}},
		{"clients", bench.Config{Workload: bench.Write, Connections: 1000, Clients: 1000}},
		{"rate", bench.Config{Workload: bench.Write, Rate: -5}},
		{"readRatio", bench.Config{Workload: bench.Mixed, ReadRatio: 1.5}},
		{"keySize", bench.Config{Workload: bench.Write, KeySize: 8}},
		{"valueSize", bench.Config{Workload: bench.Write, ValueSize: -1}},
		{"consistency", bench.Config{Workload: bench.Read, Consistency: "eventual"}},
		{"txnOps", bench.Config{Workload: bench.Txn, TxnOps: 1000}},
		{"prefix", bench.Config{Workload: bench.Write, Prefix: "bench"}},
	}
	for _, c := range cases {
		_, err := r.Run(ctx, c.cfg)
		require.ErrorIs(t, err, bench.ErrInvalidArgument, "%+v", c.cfg)
		var ce *bench.ConfigError
		require.True(t, errors.As(err, &ce))
		assert.Equal(t, c.field, ce.Field, "%v", err)
	}
	_, err := bench.New(nil)
	assert.Error(t, err)
	_, err = bench.New(etcdtest.Client(t), bench.WithLogger(nil))
	assert.Error(t, err)
	_, err = bench.New(etcdtest.Client(t), bench.WithProgress(&bytes.Buffer{}, 0))
	assert.Error(t, err)
	w, err := bench.ParseWorkload(" Mixed ")
	require.NoError(t, err)
	assert.Equal(t, bench.Mixed, w)
}

func TestSLOBothSidesOfEachThreshold(t *testing.T) {
	slo := bench.DefaultSLO()
	slo.MaxErrorRate = 0.01
	kinds := func(reads, writes float64, readP99, writeP99, p99 time.Duration, failures int64) *bench.Result {
		return &bench.Result{Workload: bench.Mixed, Ops: 1000, Successes: 1000 - failures, Failures: failures,
			Reads:   &bench.KindStats{Throughput: reads, Latency: bench.LatencyStats{P99: readP99}},
			Writes:  &bench.KindStats{Throughput: writes, Latency: bench.LatencyStats{P99: writeP99}},
			Latency: bench.LatencyStats{P99: p99}}
	}
	mixed := func(reads, writes float64, p99 time.Duration, failures int64) *bench.Result {
		return kinds(reads, writes, 20*time.Millisecond, 50*time.Millisecond, p99, failures)
	}
	verdicts := func(rep bench.SLOReport) map[string]bool {
		m := map[string]bool{}
		for _, o := range rep.Objectives {
			m[o.Name] = o.Pass
		}
		return m
	}
	atLimit := slo.Check(mixed(40000, 20000, 100*time.Millisecond, 10))
	assert.True(t, atLimit.Pass, "exactly at every threshold passes:\n%s", atLimit)
	assert.Equal(t, map[string]bool{"read_throughput": true, "write_throughput": true, "p99_latency": true, "error_rate": true,
		"read_p99_latency": true, "write_p99_latency": true}, verdicts(atLimit))

	for name, res := range map[string]*bench.Result{
		"read_throughput":   mixed(39999, 20000, 100*time.Millisecond, 0),
		"write_throughput":  mixed(40000, 19999, 100*time.Millisecond, 0),
		"p99_latency":       mixed(40000, 20000, 100*time.Millisecond+time.Microsecond, 0),
		"error_rate":        mixed(40000, 20000, time.Millisecond, 11),
		"read_p99_latency":  kinds(40000, 20000, 20*time.Millisecond+time.Microsecond, 50*time.Millisecond, 100*time.Millisecond, 0),
		"write_p99_latency": kinds(40000, 20000, 20*time.Millisecond, 50*time.Millisecond+time.Microsecond, 100*time.Millisecond, 0),
	} {
		rep := slo.Check(res)
		assert.False(t, rep.Pass, name)
		for obj, pass := range verdicts(rep) {
			assert.Equal(t, obj != name, pass, "%s when %s fails", obj, name)
		}
		assert.Contains(t, rep.String(), "FAIL "+name)
	}

	// A write workload is not held to the read floor, nor a read workload to the write floor.
	write := slo.Check(&bench.Result{Workload: bench.Write, Writes: &bench.KindStats{Throughput: 30000}})
	assert.NotContains(t, verdicts(write), "read_throughput")
	assert.NotContains(t, verdicts(write), "read_p99_latency")
	read := slo.Check(&bench.Result{Workload: bench.Read, Reads: &bench.KindStats{Throughput: 50000}})
	assert.NotContains(t, verdicts(read), "write_throughput")
	assert.NotContains(t, verdicts(read), "write_p99_latency")
	assert.True(t, read.Pass)
}

func TestBaselineRoundTripAndCompare(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	res, err := newRunner(t, etcdtest.Client(t)).Run(ctx, bench.Config{Workload: bench.Mixed, Connections: 2, Clients: 2, Ops: 200})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "base.json")
	require.NoError(t, bench.SaveBaseline(path, res))
	loaded, err := bench.LoadBaseline(path)
	require.NoError(t, err)
	assert.True(t, res.Started.Equal(loaded.Started))
	loaded.Started = res.Started
	assert.Equal(t, res, loaded, "a baseline round-trips")

	same, err := bench.Compare(loaded, res, 0.1)
	require.NoError(t, err)
	assert.False(t, same.Regressed)
	assert.Len(t, same.Deltas, 4)

	slower := *res
	slower.Throughput = res.Throughput * 0.85
	slower.Latency.P99 = res.Latency.P99 * 2
	cmp, err := bench.Compare(loaded, &slower, 0.1)
	require.NoError(t, err)
	assert.True(t, cmp.Regressed)
	assert.Equal(t, []string{"throughput", "p99"}, cmp.Regressions)

	within := *res
	within.Throughput = res.Throughput * 0.95
	cmp, err = bench.Compare(loaded, &within, 0.1)
	require.NoError(t, err)
	assert.False(t, cmp.Regressed, "%s", cmp)

	other := *res
	other.Workload = bench.Write
	_, err = bench.Compare(loaded, &other, 0.1)
	assert.ErrorIs(t, err, bench.ErrMismatch)

	var js bytes.Buffer
	require.NoError(t, res.WriteJSON(&js))
	var generic map[string]any
	require.NoError(t, json.Unmarshal(js.Bytes(), &generic))
	assert.Contains(t, generic["latency"], "p99Seconds", "durations are seconds, named so")
	assert.Contains(t, generic, "elapsedSeconds")
	assert.InDelta(t, res.Latency.P99.Seconds(), generic["latency"].(map[string]any)["p99Seconds"], 1e-9)

	// A baseline saved before durations became seconds (milliseconds, elapsedNs) loads.
	legacy := filepath.Join(t.TempDir(), "legacy.json")
	require.NoError(t, os.WriteFile(legacy, []byte(`{"workload":"write","config":{"workload":"write","duration":"2s"},
		"elapsedNs":2000000000,"ops":10,"successes":10,"throughput":5,
		"latency":{"minMs":1,"meanMs":2,"maxMs":3,"stddevMs":0.5,"p50Ms":2,"p90Ms":2.5,"p95Ms":2.75,"p99Ms":2.9,"p999Ms":3},
		"buckets":[{"label":"1-5ms","upperNs":5000000,"count":10}]}`), 0o600))
	old, err := bench.LoadBaseline(legacy)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, old.Elapsed)
	assert.Equal(t, 2900*time.Microsecond, old.Latency.P99)
	assert.Equal(t, 5*time.Millisecond, old.Buckets[0].Upper)
	assert.Equal(t, 2*time.Second, old.Config.Duration)

	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, bench.SaveBaseline(bad, &bench.Result{}))
	_, err = bench.LoadBaseline(bad)
	assert.Error(t, err)
}

func TestClusterTargetLeader(t *testing.T) {
	// A write in flight when leadership changes can fail: no election the test did not
	// make, as the framework's default 100 ms election timeout makes on a loaded machine.
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	cli := c.ClusterClient()
	ctx := etcdtest.Context(t, 60*time.Second)
	lead := c.Leader()
	follower := (lead + 1) % 3
	// A follower cut off from its peers fails the operations sent to it (it cannot reach
	// the leader), however long they are given; a run that targets the leader sends it
	// none. The operations get a timeout a loaded machine cannot exceed (there a write
	// can take seconds, and the leader the run picked may hand over to the other
	// connected member, which the old leader's writes then reach through it), and the
	// setup writes few keys, so that no setup transaction outlives etcd's own timeout.
	c.Partition(follower)
	defer c.Heal(follower)
	res, err := newRunner(t, cli).Run(ctx, bench.Config{Workload: bench.Mixed, Connections: 3, Clients: 2, Ops: 120, KeySpace: 100,
		TargetLeader: true, OpTimeout: 10 * time.Second})
	require.NoError(t, err)
	checkCounts(t, res)
	assert.Zero(t, res.Failures, "errors: %v", res.Errors)
}

func TestConfigJSON(t *testing.T) {
	var c bench.Config
	require.NoError(t, json.Unmarshal([]byte(`{"workload":"mixed","ops":10,"duration":"1.5s","opTimeout":2000000000,"readRatio":0.9,"targetLeader":true}`), &c))
	assert.Equal(t, bench.Config{Workload: bench.Mixed, Ops: 10, Duration: 1500 * time.Millisecond, OpTimeout: 2 * time.Second, ReadRatio: 0.9, TargetLeader: true}, c)
	b, err := json.Marshal(c)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"durationSeconds":1.5`)
	assert.Contains(t, string(b), `"opTimeoutSeconds":2`)
	assert.NotContains(t, string(b), `"duration"`)
	var back bench.Config
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, c, back)

	assert.Error(t, json.Unmarshal([]byte(`{"workload":"write","opz":1}`), &c), "unknown field")
	assert.Error(t, json.Unmarshal([]byte(`{"workload":"write","duration":"soon"}`), &c), "bad duration")
	assert.Error(t, json.Unmarshal([]byte(`{"workload":"write","duration":"1s","durationSeconds":1}`), &c), "both forms")
	assert.Error(t, json.Unmarshal([]byte(`{"workload":"write","durationSeconds":1e300}`), &c), "out of range")
	require.NoError(t, json.Unmarshal([]byte(`{"workload":"write","durationSeconds":0.25}`), &c))
	assert.Equal(t, 250*time.Millisecond, c.Duration)
}
