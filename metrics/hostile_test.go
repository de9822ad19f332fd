package metrics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// A member whose /metrics makes up 40 grpc_code values of 60 KB each, and serves a WAL
// fsync bucket bounded at 1e300 seconds and a backend commit bucket at -1: its snapshots
// hold only gRPC's codes and Other, so the history (and what is stored and exported of
// it) stays small, and the two histograms are left out rather than giving a P99 of minus
// 292 years or a negative commit latency. Everything else the member serves is read.
func TestCollectHostileMember(t *testing.T) {
	cli := etcdtest.Client(t)
	var b bytes.Buffer
	b.WriteString("etcd_server_has_leader 1\netcd_mvcc_put_total 42\netcd_mvcc_db_total_size_in_bytes 4096\n" +
		"grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_type=\"unary\"} 90\n" +
		"grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Range\",grpc_type=\"unary\"} 5\n" +
		"etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 5\n" +
		"etcd_disk_wal_fsync_duration_seconds_bucket{le=\"1e300\"} 10\n" +
		"etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 10\n" +
		"etcd_disk_wal_fsync_duration_seconds_sum 1\n" +
		"etcd_disk_wal_fsync_duration_seconds_count 10\n" +
		"etcd_disk_backend_commit_duration_seconds_bucket{le=\"-1\"} 10\n" +
		"etcd_disk_backend_commit_duration_seconds_bucket{le=\"+Inf\"} 10\n" +
		"etcd_disk_backend_commit_duration_seconds_count 10\n" +
		"etcd_network_peer_round_trip_time_seconds_bucket{le=\"0.0002\"} 10\n" +
		"etcd_network_peer_round_trip_time_seconds_bucket{le=\"+Inf\"} 10\n" +
		"etcd_network_peer_round_trip_time_seconds_count 10\n")
	long := strings.Repeat("x", 60000)
	for i := range 40 {
		fmt.Fprintf(&b, "grpc_server_handled_total{grpc_code=\"%02d%s\",grpc_type=\"unary\"} 1\n", i, long)
	}
	body := b.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	reg := prometheus.NewPedanticRegistry()
	c, err := metrics.New(cli, metrics.WithMetricsURLs(map[string]string{sharedMemberName(t, cli): srv.URL}),
		metrics.WithSamples(1), metrics.WithRegisterer(reg), metrics.WithTimeout(time.Minute))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	for range 2 { // the second has windows and rates
		m := collect(t, c).Members[0]
		require.NoError(t, m.Err)
		require.True(t, m.Scraped)
		for code := range m.GRPCHandled {
			require.LessOrEqual(t, len(code), len("FailedPrecondition"), "code %.20q", code)
		}
		assert.Equal(t, map[string]float64{"OK": 90, "Unavailable": 5, "Other": 40}, m.GRPCHandled)
		assert.Equal(t, float64(135), m.Totals.Requests)
		assert.Equal(t, metrics.Histogram{}, m.WALFsync, "left out: a bound of 1e300 s")
		assert.Equal(t, metrics.Histogram{}, m.BackendCommit, "left out: a bound of -1 s")
		assert.Equal(t, uint64(10), m.PeerRTT.Count, "a sound histogram stays")
		assert.Equal(t, 100*time.Microsecond, m.PeerRTT.P50)
		assert.Equal(t, int64(4096), m.DB.Size)
		assert.Equal(t, float64(42), m.Totals.Puts)
	}
	j, err := json.Marshal(c.History())
	require.NoError(t, err)
	assert.Less(t, len(j), 16<<10, "two snapshots of the member encode in a few KB, not MBs")

	mfs, err := reg.Gather()
	require.NoError(t, err)
	longest := 0
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				longest = max(longest, len(l.GetValue()))
			}
		}
	}
	assert.LessOrEqual(t, longest, 64, "the longest label value exported")
}
