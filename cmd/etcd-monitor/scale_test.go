package main

import (
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp/memberhttptest"
)

// The daemon checks and collects through connections it keeps (the client's, each
// member's status and probe connections, the kept-alive /metrics connection): round
// after round makes no new ones. Once it has stopped, none is left open.
func TestDaemonKeepsMemberConnectionsAndClosesThemOnStop(t *testing.T) {
	cli := etcdtest.Client(t)
	resp, err := cli.MemberList(etcdtest.Context(t, 5*time.Second))
	require.NoError(t, err)
	require.Len(t, resp.Members, 1)
	name := resp.Members[0].Name
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	cfg := writeFile(t, "config.yaml", `etcd:
  endpoints: ["`+p.Addr+`"]
  member_endpoints: {"`+name+`": "`+p.Addr+`"}
  metrics_urls: {"`+name+`": "http://`+p.Addr+`/metrics"}
monitor: {metrics_interval: 100ms, health_check_interval: 100ms, check_timeout: 30s}
`)
	d := startDaemon(t, "--config="+cfg)

	collections := func() float64 {
		resp, err := http.Get(d.url + "/metrics")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "etcd_monitor_metric_collection_duration_seconds_count") {
				f := strings.Fields(l)
				if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
					return v
				}
			}
		}
		return 0
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.GreaterOrEqual(ct, collections(), 3.0)
	}, 30*time.Second, 50*time.Millisecond)
	made := p.Accepted.Load()
	start := collections()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.GreaterOrEqual(ct, collections(), start+10)
	}, 30*time.Second, 50*time.Millisecond)
	// A round cut short by the check timeout closes the connection its request was on,
	// and the next round dials again: the timeout is long, so that rounds a loaded
	// machine slows down are not cut short.
	if !assert.Equal(t, made, p.Accepted.Load(), "connections made by 10 more collections and as many checks") {
		t.Logf("daemon logs:\n%s", d.logs)
	}

	require.NoError(t, d.stop())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections to the member left open after the daemon stopped")
	}, 10*time.Second, 10*time.Millisecond)
}

// The daemon keeps a short history in memory (the API reads the store's), unless the
// configuration says otherwise, and refuses a size out of range, naming the key.
func TestMemoryHistoryConfig(t *testing.T) {
	parse := func(yaml string) (*Config, error) {
		cfg, _, err := parseArgs([]string{"--config=" + writeFile(t, "c.yaml", yaml)}, io.Discard)
		return cfg, err
	}
	cfg, err := parse("etcd: {endpoints: [127.0.0.1:2379]}\n")
	require.NoError(t, err)
	assert.Equal(t, DefaultMemoryHistory, cfg.Monitor.MemoryHistory)
	cfg, err = parse("monitor: {memory_history: 1000}\n")
	require.NoError(t, err)
	assert.Equal(t, 1000, cfg.Monitor.MemoryHistory)
	for _, bad := range []string{"0", "-1", "100001"} {
		_, err := parse("monitor: {memory_history: " + bad + "}\n")
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "monitor.memory_history", bad)
	}
}

// The daemon sets its GOGC (daemonGCPercent) unless the environment sets one.
func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	assert.Equal(t, 0, tuneGC(func(k string) string { return map[string]string{"GOGC": "200"}[k] }))
	assert.Equal(t, 100, debug.SetGCPercent(100), "GOGC from the environment is left alone")
	assert.Equal(t, daemonGCPercent, tuneGC(func(string) string { return "" }))
	assert.Equal(t, daemonGCPercent, debug.SetGCPercent(100))
}
