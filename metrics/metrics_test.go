package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func collect(t *testing.T, c *metrics.Collector) *metrics.Snapshot {
	t.Helper()
	s, err := c.Collect(etcdtest.Context(t, 20*time.Second))
	require.NoError(t, err)
	return s
}

func sharedMemberName(t *testing.T, cli *clientv3.Client) string {
	t.Helper()
	resp, err := cli.MemberList(etcdtest.Context(t, 5*time.Second))
	require.NoError(t, err)
	require.Len(t, resp.Members, 1)
	return resp.Members[0].Name
}

// The shared node, scraped twice with writes in between: everything etcd exports is
// read, and rates come from the difference.
func TestCollectSharedNode(t *testing.T) {
	cli := etcdtest.Client(t)
	c, err := metrics.New(cli)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.Nil(t, c.Latest())

	first := collect(t, c)
	require.Len(t, first.Members, 1)
	m := first.Members[0]
	require.NoError(t, m.Err)
	assert.True(t, m.Scraped)
	assert.Zero(t, m.Interval, "no rate in a member's first snapshot")
	assert.Zero(t, m.Throughput.Puts)
	assert.Equal(t, metrics.DefaultSamples, m.Latency.Samples)
	assert.Zero(t, m.Latency.Errors)
	assert.Positive(t, m.Latency.P50)
	assert.LessOrEqual(t, m.Latency.P50, m.Latency.P95)
	assert.LessOrEqual(t, m.Latency.P95, m.Latency.P99)
	assert.LessOrEqual(t, m.Latency.P99, m.Latency.Max)
	assert.Positive(t, m.DB.Size)
	assert.Positive(t, m.DB.InUse)
	assert.Positive(t, m.DB.Quota)
	assert.True(t, m.Raft.HasLeader)
	// In-process members share the process's registry: once a cluster test has run in
	// this process (as with -count=2), etcd_server_is_leader and the raft index gauges
	// may hold its members' last values, so only what the shared node itself keeps
	// moving is checked exactly.
	assert.Positive(t, m.Raft.ProposalsCommitted)
	assert.Positive(t, m.Raft.ProposalsApplied)
	assert.Positive(t, m.Process.RSS)
	assert.Positive(t, m.Process.OpenFDs)
	assert.Equal(t, first.Latency.Samples, metrics.DefaultSamples)

	prefix := etcdtest.Prefix(t)
	const puts = 50
	for i := range puts {
		_, err := cli.Put(etcdtest.Context(t, 5*time.Second), fmt.Sprintf("%s%d", prefix, i), strings.Repeat("x", 1024))
		require.NoError(t, err)
	}
	cli.Watch(etcdtest.Context(t, 30*time.Second), prefix, clientv3.WithPrefix())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		s, err := c.Collect(etcdtest.Context(t, 20*time.Second))
		if assert.NoError(ct, err) {
			assert.GreaterOrEqual(ct, s.Members[0].Watchers, float64(1))
		}
	}, 10*time.Second, 20*time.Millisecond)

	second := c.Latest()
	m2 := second.Members[0]
	require.NoError(t, m2.Err)
	assert.Positive(t, m2.Interval)
	assert.GreaterOrEqual(t, m2.Raft.ProposalsCommitted, float64(puts), "committed index is a gauge read as is")
	assert.GreaterOrEqual(t, m2.GRPCStreams, float64(1), "the watch stream is open")
	hist := c.History()
	require.GreaterOrEqual(t, len(hist), 2)
	assert.Same(t, first, hist[0])
	assert.Same(t, second, hist[len(hist)-1])

	// Over the whole run, the puts show as throughput.
	var putsSeen float64
	for _, s := range hist[1:] {
		putsSeen += s.Members[0].Throughput.Puts * s.Members[0].Interval.Seconds()
	}
	assert.InDelta(t, float64(puts), putsSeen, 1, "puts counted from the counter deltas")
	walCount := uint64(0)
	for _, s := range hist {
		walCount = max(walCount, s.Members[0].WALFsync.Count)
	}
	assert.Positive(t, walCount)
}

const fakeMetrics = `# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
# TYPE etcd_server_is_leader gauge
etcd_server_is_leader 0
# TYPE etcd_server_leader_changes_seen_total counter
etcd_server_leader_changes_seen_total 3
# TYPE etcd_server_proposals_committed_total gauge
etcd_server_proposals_committed_total {{.Committed}}
# TYPE etcd_server_proposals_applied_total gauge
etcd_server_proposals_applied_total {{.Committed}}
# TYPE etcd_server_proposals_pending gauge
etcd_server_proposals_pending 2
# TYPE etcd_server_proposals_failed_total counter
etcd_server_proposals_failed_total {{.Failed}}
# TYPE etcd_mvcc_put_total counter
etcd_mvcc_put_total {{.Puts}}
# TYPE etcd_mvcc_db_total_size_in_bytes gauge
etcd_mvcc_db_total_size_in_bytes {{.DB}}
# TYPE etcd_mvcc_db_total_size_in_use_in_bytes gauge
etcd_mvcc_db_total_size_in_use_in_bytes 1000
# TYPE etcd_server_quota_backend_bytes gauge
etcd_server_quota_backend_bytes 8589934592
# TYPE etcd_debugging_mvcc_watcher_total gauge
etcd_debugging_mvcc_watcher_total 7
# TYPE grpc_server_started_total counter
grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 5
grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} {{.Requests}}
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 2
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} {{.Requests}}
grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 4
grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{mountpoint="/var/lib/etcd"} 1000
# TYPE node_filesystem_size_bytes gauge
node_filesystem_size_bytes{mountpoint="/var/lib/etcd"} 4000
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {{.CPU}}
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} {{index .Fsync 0}}
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} {{index .Fsync 1}}
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.004"} {{index .Fsync 2}}
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.008"} {{index .Fsync 3}}
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.016"} {{index .Fsync 4}}
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.032"} {{index .Fsync 5}}
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} {{index .Fsync 6}}
etcd_disk_wal_fsync_duration_seconds_sum 1
etcd_disk_wal_fsync_duration_seconds_count {{index .Fsync 6}}
# TYPE etcd_network_peer_round_trip_time_seconds histogram
etcd_network_peer_round_trip_time_seconds_bucket{To="a",le="0.0001"} 0
etcd_network_peer_round_trip_time_seconds_bucket{To="a",le="0.0002"} 10
etcd_network_peer_round_trip_time_seconds_bucket{To="a",le="+Inf"} 10
etcd_network_peer_round_trip_time_seconds_sum{To="a"} 0.001
etcd_network_peer_round_trip_time_seconds_count{To="a"} 10
etcd_network_peer_round_trip_time_seconds_bucket{To="b",le="0.0001"} 10
etcd_network_peer_round_trip_time_seconds_bucket{To="b",le="0.0002"} 10
etcd_network_peer_round_trip_time_seconds_bucket{To="b",le="+Inf"} 10
etcd_network_peer_round_trip_time_seconds_sum{To="b"} 0.001
etcd_network_peer_round_trip_time_seconds_count{To="b"} 10
`

type fakeValues struct {
	Committed, Failed, Puts, DB, Requests, CPU float64
	Fsync                                      [7]int
}

// fakeServer serves fakeMetrics with the values v points to.
func fakeServer(t *testing.T, mu *sync.Mutex, v *fakeValues) *httptest.Server {
	tmpl := template.Must(template.New("m").Parse(fakeMetrics))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if err := tmpl.Execute(w, v); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The arithmetic on known values: histogram quantiles interpolated within buckets, the
// exact share over 16 ms, windows between snapshots, gauges read as is, counter rates and
// counter resets.
func TestCollectArithmetic(t *testing.T) {
	cli := etcdtest.Client(t)
	var mu sync.Mutex
	v := &fakeValues{Committed: 100, Failed: 3, Puts: 1000, DB: 1 << 20, Requests: 50, CPU: 10,
		Fsync: [7]int{10, 30, 50, 70, 90, 100, 100}}
	srv := fakeServer(t, &mu, v)
	c, err := metrics.New(cli, metrics.WithMetricsURLs(map[string]string{sharedMemberName(t, cli): srv.URL}), metrics.WithSamples(3))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	m := collect(t, c).Members[0]
	require.NoError(t, m.Err)
	assert.Equal(t, 3, m.Latency.Samples)
	assert.Equal(t, srv.URL, m.MetricsURL)
	f := m.WALFsync
	assert.False(t, f.Windowed)
	assert.Equal(t, uint64(100), f.Count)
	assert.Equal(t, 4*time.Millisecond, f.P50, "rank 50 ends bucket (2ms, 4ms]")
	assert.InDelta(t, float64(30400*time.Microsecond), float64(f.P99), float64(time.Microsecond), "rank 99: 16ms + 16ms*9/10")
	assert.InDelta(t, 0.10, f.Over16ms, 1e-9)
	assert.Equal(t, uint64(20), m.PeerRTT.Count, "peers merged")
	assert.Equal(t, 100*time.Microsecond, m.PeerRTT.P50)
	assert.Equal(t, float64(100), m.Raft.ProposalsCommitted)
	assert.Equal(t, float64(2), m.Raft.ProposalsPending)
	assert.Equal(t, float64(3), m.Raft.ProposalsFailed)
	assert.Equal(t, float64(3), m.Raft.LeaderChanges)
	assert.True(t, m.Raft.HasLeader)
	assert.False(t, m.Raft.IsLeader)
	assert.Equal(t, float64(3), m.GRPCStreams, "bidi streams started minus handled")
	assert.Equal(t, float64(7), m.Watchers)
	assert.Equal(t, int64(8589934592), m.DB.Quota)
	assert.Equal(t, map[string]float64{"OK": 50, "Unavailable": 5}, m.GRPCHandled, "unary only, by code")
	assert.Equal(t, metrics.Disk{Exposed: true, Available: 1000, Size: 4000}, m.Disk)
	require.Len(t, f.Buckets, 7, "cumulative buckets kept for windows")
	assert.Equal(t, uint64(100), f.Total)
	assert.Equal(t, metrics.Bucket{UpperBound: 0.016, Count: 90}, f.Buckets[4])
	assert.True(t, math.IsInf(f.Buckets[6].UpperBound, 1))
	b, err := json.Marshal(f.Buckets[6])
	require.NoError(t, err)
	assert.JSONEq(t, `{"le":"+Inf","count":100}`, string(b), "JSON has no infinity")
	var back metrics.Bucket
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, f.Buckets[6], back)
	first := m

	mu.Lock()
	v.Committed, v.Failed, v.Puts, v.DB, v.Requests, v.CPU = 200, 5, 1600, 2<<20, 150, 11
	for i := range v.Fsync {
		v.Fsync[i] += 100 // 100 more fsyncs, all under 1 ms
	}
	mu.Unlock()
	s := collect(t, c)
	m = s.Members[0]
	require.NoError(t, m.Err)
	dt := m.Interval.Seconds()
	require.Positive(t, dt)
	assert.InDelta(t, 600, m.Throughput.Puts*dt, 1e-6)
	assert.InDelta(t, 100, m.Throughput.Requests*dt, 1e-6)
	assert.InDelta(t, 100, s.Throughput*dt, 1e-6)
	assert.InDelta(t, 2, m.Raft.ProposalsFailedRate*dt, 1e-6)
	assert.InDelta(t, float64(1<<20), m.DB.GrowthRate*dt, 1e-3)
	assert.InDelta(t, 1, m.Process.CPUUsage*dt, 1e-6)
	assert.Equal(t, float64(200), m.Raft.ProposalsCommitted, "a gauge, not a rate")
	f = m.WALFsync
	assert.True(t, f.Windowed)
	assert.Equal(t, uint64(100), f.Count)
	assert.Equal(t, 500*time.Microsecond, f.P50)
	assert.Equal(t, 990*time.Microsecond, f.P99)
	assert.Zero(t, f.Over16ms)
	assert.False(t, m.PeerRTT.Windowed, "no new peer observations: the whole history")
	q, n := metrics.WindowQuantile(0.99, first.WALFsync, m.WALFsync)
	assert.Equal(t, uint64(100), n, "the window between two snapshots")
	assert.InDelta(t, 0.00099, q, 1e-9)
	q, n = metrics.WindowQuantile(0.99, m.WALFsync, first.WALFsync)
	assert.Equal(t, uint64(100), n, "a reset counts the newer buckets from zero")
	assert.InDelta(t, 0.0304, q, 1e-9)

	// A restarted member: counters start again; no negative rates, no window.
	mu.Lock()
	v.Puts, v.Failed, v.CPU = 10, 0, 0.5
	v.Fsync = [7]int{0, 0, 0, 0, 1, 2, 2}
	mu.Unlock()
	m = collect(t, c).Members[0]
	assert.Zero(t, m.Throughput.Puts)
	assert.Zero(t, m.Raft.ProposalsFailedRate)
	assert.Zero(t, m.Process.CPUUsage)
	assert.False(t, m.WALFsync.Windowed)
	assert.Equal(t, 0.5, m.WALFsync.Over16ms)
}

// endpoints maps an in-process cluster's member names to their gRPC bridges.
func endpoints(c *etcdtest.Cluster) map[string]string {
	out := map[string]string{}
	for _, m := range c.Members {
		out[m.Name] = m.GRPCURL
	}
	return out
}

// steady collects until every member but victim answered cleanly: on a loaded machine the
// in-process cluster may change leaders, and a probe during an election rightly fails.
func steady(t *testing.T, col *metrics.Collector, victim string) *metrics.Snapshot {
	t.Helper()
	var s *metrics.Snapshot
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := col.Collect(etcdtest.Context(t, 20*time.Second))
		if !assert.NoError(c, err) {
			return
		}
		for _, m := range got.Members {
			assert.True(c, m.Name == victim || m.Err == nil, "member %s: %v; collecting again", m.Name, m.Err)
		}
		s = got
	}, 60*time.Second, 10*time.Millisecond)
	return s
}

// Bad input on a 3-node cluster: a member whose /metrics is garbage, one that hangs,
// one behind TLS the collector does not trust, and one whose gRPC is blackholed; each
// time that member carries the error and the others are complete.
func TestClusterFaultBadMembers(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	cli := c.ClusterClient()

	junk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>\n<body>It works!</body>\n"))
	}))
	t.Cleanup(junk.Close)
	notEtcd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("# TYPE up gauge\nup 1\n"))
	}))
	t.Cleanup(notEtcd.Close)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)

	// Ten linearizable probes per member must fit in the timeout on a loaded machine
	// under -race; only the hanging member waits for it.
	const timeout = 4 * time.Second
	victim := c.Members[1].Name
	for name, url := range map[string]string{
		"garbage":  junk.URL + "/metrics",
		"not etcd": notEtcd.URL + "/metrics",
		"timeout":  hang.URL + "/metrics",
		"tls":      tlsSrv.URL + "/metrics",
	} {
		t.Run(name, func(t *testing.T) {
			col, err := metrics.New(cli, metrics.WithEndpoints(endpoints(c)), metrics.WithTimeout(timeout),
				metrics.WithMetricsURLs(map[string]string{victim: url}))
			require.NoError(t, err)
			t.Cleanup(func() { col.Close() })
			s := steady(t, col, victim)
			assert.Less(t, s.Duration, 3*timeout)
			require.Len(t, s.Members, 3)
			for _, m := range s.Members {
				assert.Equal(t, metrics.DefaultSamples, m.Latency.Samples, "probes of %s unaffected", m.Name)
				if m.Name == victim {
					assert.ErrorIs(t, m.Err, metrics.ErrScrape)
					assert.NotEmpty(t, m.Error)
					assert.False(t, m.Scraped)
					continue
				}
				assert.NoError(t, m.Err, m.Name)
				assert.True(t, m.Scraped, m.Name)
				assert.Positive(t, m.DB.Size, m.Name)
			}
		})
	}

	t.Run("blackholed", func(t *testing.T) {
		col, err := metrics.New(cli, metrics.WithEndpoints(endpoints(c)), metrics.WithTimeout(timeout))
		require.NoError(t, err)
		t.Cleanup(func() { col.Close() })
		c.Blackhole(1)
		defer c.Unblackhole(1)
		s := steady(t, col, victim)
		assert.Less(t, s.Duration, 3*timeout)
		for _, m := range s.Members {
			if m.Name == victim {
				assert.ErrorIs(t, m.Err, metrics.ErrProbe)
				assert.Zero(t, m.Latency.Samples)
				assert.Equal(t, metrics.DefaultSamples, m.Latency.Errors)
				assert.True(t, m.Scraped, "its /metrics does not go through the gRPC bridge")
				continue
			}
			assert.NoError(t, m.Err, m.Name)
			assert.Equal(t, metrics.DefaultSamples, m.Latency.Samples)
		}
		assert.Equal(t, 2*metrics.DefaultSamples, s.Latency.Samples)
		assert.Equal(t, metrics.DefaultSamples, s.Latency.Errors)
	})
}

// The exporter on a pedantic registry: consistent descriptions, one series per member,
// gone after Close.
func TestExporterPedantic(t *testing.T) {
	cli := etcdtest.Client(t)
	reg := prometheus.NewPedanticRegistry()
	c, err := metrics.New(cli, metrics.WithRegisterer(reg))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "before the first collection, only the (empty) collection duration histogram")

	snap := collect(t, c)
	id := snap.Members[0].ID.Hex()
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP etcd_monitor_member_up 1 when the member answered both the probe and the scrape of the latest collection.
# TYPE etcd_monitor_member_up gauge
etcd_monitor_member_up{member=%[1]q} 1
# HELP etcd_monitor_member_has_leader 1 when the member sees a leader (etcd_server_has_leader).
# TYPE etcd_monitor_member_has_leader gauge
etcd_monitor_member_has_leader{member=%[1]q} 1
# HELP etcd_monitor_probe_errors_total Linearizable read probes through the member that failed.
# TYPE etcd_monitor_probe_errors_total counter
etcd_monitor_probe_errors_total{member=%[1]q} 0
`, id)), "etcd_monitor_member_up", "etcd_monitor_member_has_leader", "etcd_monitor_probe_errors_total"))
	n, err = testutil.GatherAndCount(reg, "etcd_monitor_probe_duration_seconds")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "one histogram per member")
	n, err = testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Greater(t, n, 20)
	problems, err := testutil.CollectAndLint(c.Exporter())
	require.NoError(t, err)
	assert.Empty(t, problems)

	// A second registration of the same exporter is refused by the registry.
	assert.Error(t, reg.Register(c.Exporter()))

	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	n, err = testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestCollectConcurrentAndHistoryBound(t *testing.T) {
	cli := etcdtest.Client(t)
	c, err := metrics.New(cli, metrics.WithHistorySize(3), metrics.WithSamples(2))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 2 {
				_, err := c.Collect(context.Background())
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	h := c.History()
	require.Len(t, h, 3)
	assert.Same(t, h[2], c.Latest())
}

func TestNewInvalidOptions(t *testing.T) {
	cli := etcdtest.Client(t)
	for name, opt := range map[string]metrics.Option{
		"zero samples":     metrics.WithSamples(0),
		"zero timeout":     metrics.WithTimeout(0),
		"zero history":     metrics.WithHistorySize(0),
		"zero concurrency": metrics.WithConcurrency(0),
		"nil logger":       metrics.WithLogger(nil),
		"empty endpoint":   metrics.WithEndpoints(map[string]string{"m0": ""}),
		"bad metrics URL":  metrics.WithMetricsURLs(map[string]string{"m0": "ftp://x/metrics"}),
		"no host":          metrics.WithMetricsURLs(map[string]string{"m0": "http:///metrics"}),
	} {
		_, err := metrics.New(cli, opt)
		assert.ErrorIs(t, err, metrics.ErrInvalidArgument, name)
	}
	_, err := metrics.New(nil)
	assert.ErrorIs(t, err, metrics.ErrInvalidArgument)
	_, err = metrics.New(cli, nil)
	assert.ErrorIs(t, err, metrics.ErrInvalidArgument, "a nil Option is an error, not a panic")
}

// A member serving NaN and ±Inf (process_cpu_seconds_total NaN is what some platforms
// serve): the snapshot drops them and still encodes as JSON, in the latest snapshot and
// in the history, which is what the API serves.
func TestCollectNonFiniteValues(t *testing.T) {
	cli := etcdtest.Client(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("etcd_server_has_leader 1\n" +
			"process_cpu_seconds_total NaN\n" +
			"process_resident_memory_bytes +Inf\n" +
			"etcd_mvcc_db_total_size_in_bytes -Inf\n" +
			"etcd_mvcc_put_total NaN\n" +
			"etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 1\n" +
			"etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 1\n" +
			"etcd_disk_wal_fsync_duration_seconds_sum NaN\n" +
			"etcd_disk_wal_fsync_duration_seconds_count 1\n"))
	}))
	t.Cleanup(srv.Close)
	reg := prometheus.NewPedanticRegistry()
	c, err := metrics.New(cli, metrics.WithMetricsURLs(map[string]string{sharedMemberName(t, cli): srv.URL}),
		metrics.WithSamples(1), metrics.WithRegisterer(reg))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	for range 2 { // the second has rates
		m := collect(t, c).Members[0]
		require.NoError(t, m.Err)
		assert.True(t, m.Scraped)
		assert.Zero(t, m.Process.CPUSeconds, "NaN dropped")
		assert.Zero(t, m.Process.RSS, "+Inf dropped")
		assert.Zero(t, m.DB.Size, "-Inf dropped")
		assert.Equal(t, uint64(1), m.WALFsync.Total)
		assert.Zero(t, m.WALFsync.Sum)
	}
	_, err = json.Marshal(c.Latest())
	require.NoError(t, err)
	_, err = json.Marshal(c.History())
	require.NoError(t, err)
	_, err = reg.Gather()
	require.NoError(t, err)
}

// A member's /metrics is read up to metrics.MaxScrapeBytes; a larger body is a clear
// error (ErrTooLarge inside ErrScrape), not a truncated parse.
func TestCollectOversizedMetrics(t *testing.T) {
	cli := etcdtest.Client(t)
	line := []byte("go_memstats_other_sys_bytes 1.234567e+06\n")
	for name, declared := range map[string]bool{"chunked": false, "Content-Length": true} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				n := metrics.MaxScrapeBytes/len(line) + 1
				if declared {
					w.Header().Set("Content-Length", fmt.Sprint(n*len(line)+len("etcd_server_has_leader 1\n")))
				}
				_, _ = w.Write([]byte("etcd_server_has_leader 1\n"))
				chunk := bytes.Repeat(line, 1000)
				for i := 0; i < n; i += 1000 {
					if _, err := w.Write(chunk[:min(n-i, 1000)*len(line)]); err != nil {
						return
					}
				}
			}))
			t.Cleanup(srv.Close)
			// A generous timeout: reading 16 MiB under -race on a loaded machine is slow,
			// and a timeout is not what this test is about.
			c, err := metrics.New(cli, metrics.WithMetricsURLs(map[string]string{sharedMemberName(t, cli): srv.URL}),
				metrics.WithSamples(1), metrics.WithTimeout(time.Minute))
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			s, err := c.Collect(etcdtest.Context(t, 2*time.Minute))
			require.NoError(t, err)
			m := s.Members[0]
			assert.ErrorIs(t, m.Err, metrics.ErrScrape)
			assert.ErrorIs(t, m.Err, metrics.ErrTooLarge)
			assert.False(t, m.Scraped)
			assert.Contains(t, m.Error, "16777216 bytes")
		})
	}
}

// Each successful probe is one observation in the member's probe histogram, and a
// scrape one in its scrape histogram; the collection histogram counts collections.
func TestExporterHistogramsMove(t *testing.T) {
	cli := etcdtest.Client(t)
	reg := prometheus.NewPedanticRegistry()
	c, err := metrics.New(cli, metrics.WithSamples(4), metrics.WithRegisterer(reg))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	count := func(name string) uint64 {
		fams, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range fams {
			if f.GetName() == name {
				require.Len(t, f.GetMetric(), 1)
				return f.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		return 0
	}
	s := collect(t, c)
	id := s.Members[0].ID.Hex()
	assert.Equal(t, uint64(s.Members[0].Latency.Samples), count("etcd_monitor_probe_duration_seconds"))
	collect(t, c)
	collect(t, c)
	var probes, failed int
	for _, s := range c.History() {
		probes += s.Members[0].Latency.Samples
		failed += s.Members[0].Latency.Errors
	}
	assert.Equal(t, 12, probes+failed, "4 probes in each of 3 collections")
	assert.Equal(t, float64(failed), testutil.ToFloat64(mustCollector(t, reg, "etcd_monitor_probe_errors_total", id)))
	assert.Equal(t, uint64(probes), count("etcd_monitor_probe_duration_seconds"), "one observation per successful probe")
	assert.Equal(t, uint64(3), count("etcd_monitor_scrape_duration_seconds"))
	assert.Equal(t, uint64(3), count("etcd_monitor_metric_collection_duration_seconds"))
	assert.Equal(t, float64(0), testutil.ToFloat64(mustCollector(t, reg, "etcd_monitor_scrape_errors_total", id)))
	fsync := count("etcd_monitor_member_wal_fsync_duration_seconds")
	assert.Positive(t, fsync)
	assert.LessOrEqual(t, s.Members[0].WALFsync.Total, fsync, "etcd's own histogram re-exported with its count")
}

// mustCollector returns a collector of the one series of name with member=id, for
// testutil.ToFloat64.
func mustCollector(t *testing.T, g prometheus.Gatherer, name, id string) prometheus.Collector {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "member" && l.GetValue() == id {
					return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, func() float64 {
						return m.GetCounter().GetValue() + m.GetGauge().GetValue()
					})
				}
			}
		}
	}
	t.Fatalf("no %s{member=%q}", name, id)
	return nil
}
