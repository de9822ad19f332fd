package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// This file sorts after metrics_test.go on purpose: members of in-process clusters
// register with the process's Prometheus registry, which the shared node serves, so the
// shared node's tests must run before any cluster's.

// A member removed from the cluster is forgotten: its previous raw values, its exported
// series (probe and scrape histograms, counters, gauges) and its snapshot entry go.
func TestClusterFaultRemovedMemberForgotten(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	eps := map[string]string{}
	for _, m := range c.Members {
		eps[m.Name] = m.GRPCURL
	}
	reg := prometheus.NewPedanticRegistry()
	col, err := metrics.New(c.Client(0), metrics.WithEndpoints(eps), metrics.WithSamples(1), metrics.WithRegisterer(reg))
	require.NoError(t, err)
	t.Cleanup(func() { col.Close() })

	victim := 2
	if c.Leader() == victim {
		victim = 1
	}
	gone := metrics.ID(c.Members[victim].Server.MemberID()).Hex()
	ctx := etcdtest.Context(t, 60*time.Second)
	// Until every member was scraped once (an election on a loaded machine may fail one).
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		s, err := col.Collect(ctx)
		if assert.NoError(ct, err) {
			for _, m := range s.Members {
				assert.True(ct, m.Scraped, m.Name)
			}
		}
	}, 30*time.Second, 10*time.Millisecond)
	raw, series := col.Members()
	assert.Len(t, raw, 3)
	assert.Len(t, series, 3)
	assert.Positive(t, seriesOf(t, reg, gone))

	// etcd refuses a removal until the member it is asked through has been connected to
	// every peer for a while.
	victimID := uint64(c.Members[victim].Server.MemberID())
	removeWhenAccepted(t, c, victimID, 30*time.Second)
	s, err := col.Collect(ctx)
	require.NoError(t, err)
	require.Len(t, s.Members, 2)
	_, ok := s.Member(uint64(mustParseID(t, gone)))
	assert.False(t, ok)
	raw, series = col.Members()
	assert.Len(t, raw, 2, "its raw values are dropped")
	assert.NotContains(t, raw, mustParseID(t, gone))
	assert.Len(t, series, 2)
	assert.NotContains(t, series, mustParseID(t, gone))
	assert.Zero(t, seriesOf(t, reg, gone), "no series of the removed member remain")
}

func mustParseID(t *testing.T, hex string) metrics.ID {
	var id metrics.ID
	require.NoError(t, id.UnmarshalText([]byte(hex)))
	return id
}

// seriesOf counts the series labelled member=id.
func seriesOf(t *testing.T, g prometheus.Gatherer, id string) int {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	n := 0
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "member" && l.GetValue() == id {
					n++
				}
			}
		}
	}
	return n
}

// At most WithConcurrency members are collected at once: with 1, the members' scrapes
// never overlap; with more than the members, all of them do.
func TestClusterConcurrencyBound(t *testing.T) {
	body, err := os.ReadFile("testdata/etcd-3.7.3.metrics.txt") // before the cluster changes directory
	require.NoError(t, err)
	c := etcdtest.NewCluster(t, 3)
	eps := map[string]string{}
	for _, m := range c.Members {
		eps[m.Name] = m.GRPCURL
	}
	for _, tc := range []struct {
		limit, want int
		hold        time.Duration // how long a scrape waits for the others to arrive
	}{{1, 1, 50 * time.Millisecond}, {8, 3, 10 * time.Second}} {
		var mu sync.Mutex
		cond := sync.NewCond(&mu)
		inflight, most, met := 0, 0, false // met: all three were in at once
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			inflight++
			most = max(most, inflight)
			met = met || inflight == 3
			cond.Broadcast()
			deadline := time.Now().Add(tc.hold)
			for !met && time.Now().Before(deadline) {
				timer := time.AfterFunc(time.Until(deadline), cond.Broadcast)
				cond.Wait()
				timer.Stop()
			}
			inflight--
			mu.Unlock()
			_, _ = w.Write(body)
		}))
		urls := map[string]string{}
		for _, m := range c.Members {
			urls[m.Name] = srv.URL
		}
		col, err := metrics.New(c.Client(0), metrics.WithEndpoints(eps), metrics.WithMetricsURLs(urls),
			metrics.WithSamples(1), metrics.WithConcurrency(tc.limit), metrics.WithTimeout(20*time.Second))
		require.NoError(t, err)
		s, err := col.Collect(etcdtest.Context(t, 60*time.Second))
		require.NoError(t, err)
		for _, m := range s.Members {
			assert.True(t, m.Scraped, "%s: %v", m.Name, m.Err)
		}
		mu.Lock()
		assert.Equal(t, tc.want, most, "WithConcurrency(%d)", tc.limit)
		mu.Unlock()
		require.NoError(t, col.Close())
		srv.Close()
	}
}

// removeWhenAccepted removes member id through member 0, asking again every 100ms while
// etcd refuses, for at most d. The framework's removal then waits for the member to stop
// and may end the test: it runs here, not inside an Eventually condition.
func removeWhenAccepted(t *testing.T, c *etcdtest.Cluster, id uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	cli := c.Client(0)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.RemoveMember(t, cli, id)
		if err == nil {
			return
		}
		require.True(t, time.Now().Before(deadline), "etcd refused the removal for %v: %v", d, err)
		<-tick.C
	}
}
