package metrics_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp/memberhttptest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// proxiedCollector is a Collector of the shared node that reaches it (probes and
// scrapes) only through p.
func proxiedCollector(t *testing.T, opts ...metrics.Option) (*metrics.Collector, *memberhttptest.Proxy) {
	t.Helper()
	cli := etcdtest.Client(t)
	name := sharedMemberName(t, cli)
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := metrics.New(cli, append([]metrics.Option{metrics.WithSamples(2),
		metrics.WithEndpoints(map[string]string{name: "http://" + p.Addr}),
		metrics.WithMetricsURLs(map[string]string{name: "http://" + p.Addr + "/metrics"})}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, p
}

// Collections reuse one gRPC connection for the probes and one kept-alive HTTP
// connection for /metrics, and Close leaves no connection open.
func TestCollectorKeepsConnectionsUntilClose(t *testing.T) {
	c, p := proxiedCollector(t)
	for range 4 {
		s := collect(t, c)
		require.NoError(t, s.Members[0].Err)
	}
	assert.EqualValues(t, 2, p.Accepted.Load(), "connections made by 4 collections (one for probes, one for /metrics)")
	assert.EqualValues(t, 2, p.Open.Load())

	require.NoError(t, c.Close())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open after Close")
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close(), "Close is idempotent")

	// A collection after Close still works, and keeps nothing.
	s := collect(t, c)
	require.NoError(t, s.Members[0].Err)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open by a collection after Close")
	}, 10*time.Second, 10*time.Millisecond)
}

// A member that drops its connections and refuses new ones fails the collection; once
// it accepts again the very next collection probes and scrapes it without an error,
// rather than waiting out gRPC's reconnection backoff on the kept connection.
func TestCollectorRedialsAfterMemberReturns(t *testing.T) {
	c, p := proxiedCollector(t, metrics.WithTimeout(time.Second))
	s := collect(t, c)
	require.NoError(t, s.Members[0].Err)

	p.Down.Store(true)
	p.Drop()
	s = collect(t, c)
	require.Error(t, s.Members[0].Err, "a member refusing connections")
	assert.Positive(t, s.Members[0].Latency.Errors)

	p.Down.Store(false)
	s = collect(t, c)
	require.NoError(t, s.Members[0].Err, "the collection right after the member is back")
	assert.Zero(t, s.Members[0].Latency.Errors)
	assert.Equal(t, 2, s.Members[0].Latency.Samples)
}

// Closing the client closes the probe connections, even without Close.
func TestCollectorConnectionsCloseWithTheClient(t *testing.T) {
	cli, err := etcdtest.NewClient()
	require.NoError(t, err)
	name := sharedMemberName(t, cli)
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := metrics.New(cli, metrics.WithSamples(1), metrics.WithEndpoints(map[string]string{name: "http://" + p.Addr}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s := collect(t, c)
	require.NoError(t, s.Members[0].Err)
	require.EqualValues(t, 1, p.Open.Load(), "the probe connection")
	require.NoError(t, cli.Close())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "probe connections left open after the client closed")
	}, 10*time.Second, 10*time.Millisecond)
}

// A Close while a collection waits for the member leaves no connection open once the
// collection ends.
func TestCollectorCloseDuringCollectionLeavesNoConnection(t *testing.T) {
	c, p := proxiedCollector(t, metrics.WithTimeout(5*time.Second))
	p.Hold()
	done := make(chan *metrics.Snapshot, 1)
	go func() {
		s, err := c.Collect(etcdtest.Context(t, 10*time.Second))
		assert.NoError(t, err)
		done <- s
	}()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.EqualValues(ct, 2, p.Accepted.Load(), "the collection's probe and /metrics connections")
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, c.Close())
	p.Release()
	s := <-done
	require.NotNil(t, s)
	require.NoError(t, s.Members[0].Err)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open by a collection that Close overlapped")
	}, 10*time.Second, 10*time.Millisecond)
}

// A health checker and a collector of the same client reach each member over one gRPC
// connection, and the last of them to close closes it.
func TestCollectorSharesMemberConnectionWithHealth(t *testing.T) {
	cli := etcdtest.Client(t)
	name := sharedMemberName(t, cli)
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	hc := &http.Client{Transport: memberhttp.NewTransport(nil)}
	t.Cleanup(hc.CloseIdleConnections)
	endpoints := map[string]string{name: "http://" + p.Addr}
	c, err := metrics.New(cli, metrics.WithSamples(2), metrics.WithHTTPClient(hc), metrics.WithEndpoints(endpoints),
		metrics.WithMetricsURLs(map[string]string{name: "http://" + p.Addr + "/metrics"}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	h, err := health.New(cli, health.WithHTTPClient(hc), health.WithEndpoints(endpoints))
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })

	for range 3 {
		require.NoError(t, collect(t, c).Members[0].Err)
		r, err := h.Check(etcdtest.Context(t, 20*time.Second))
		require.NoError(t, err)
		require.True(t, r.Healthy, "%+v", r)
	}
	assert.EqualValues(t, 2, p.Accepted.Load(), "connections made by 3 collections and 3 checks (one gRPC, one HTTP)")

	require.NoError(t, c.Close())
	hc.CloseIdleConnections()
	r, err := h.Check(etcdtest.Context(t, 20*time.Second))
	require.NoError(t, err)
	require.True(t, r.Healthy, "the checker's connection outlives the collector's Close: %+v", r)
	require.NoError(t, h.Close())
	hc.CloseIdleConnections()
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open after both closed")
	}, 10*time.Second, 10*time.Millisecond)
}

// sharedPair is a Collector and a Checker of one client that reach the shared node only
// through p, given its endpoint by member ID, and a function that opens one more Checker
// like h.
func sharedPair(t *testing.T) (*metrics.Collector, *health.Checker, *memberhttptest.Proxy, func() *health.Checker) {
	t.Helper()
	cli := etcdtest.Client(t)
	resp, err := cli.MemberList(etcdtest.Context(t, 5*time.Second))
	require.NoError(t, err)
	require.Len(t, resp.Members, 1)
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	endpoints := map[string]string{metrics.ID(resp.Members[0].ID).Hex(): "http://" + p.Addr}
	c, err := metrics.New(cli, metrics.WithSamples(2), metrics.WithEndpoints(endpoints))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	newChecker := func() *health.Checker {
		h, err := health.New(cli, health.WithEndpoints(endpoints))
		require.NoError(t, err)
		t.Cleanup(func() { h.Close() })
		return h
	}
	return c, newChecker(), p, newChecker
}

// Endpoints given by member ID, as health.WithEndpoints takes them, reach the collector
// too: the checker and the collector use one endpoint per member, so their shared
// connection is dialled once, not once a round by each in turn.
func TestCollectorEndpointByIDSharedWithHealth(t *testing.T) {
	c, h, p, _ := sharedPair(t)

	for range 3 {
		s := collect(t, c)
		require.Equal(t, "http://"+p.Addr, s.Members[0].Endpoint)
		_, err := h.Check(etcdtest.Context(t, 20*time.Second))
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, p.Accepted.Load(), "gRPC connections made by 3 collections and 3 checks")
}

// A Check after the Checker's Close, and a Collect after the Collector's Close, keep no
// connection, also while the other, open, shares the member connections.
func TestAfterCloseKeepsNoSharedConnection(t *testing.T) {
	c, h, p, newChecker := sharedPair(t)

	require.NoError(t, h.Close())
	_, err := h.Check(etcdtest.Context(t, 20*time.Second))
	require.NoError(t, err)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections kept by a Check after Close")
	}, 10*time.Second, 10*time.Millisecond)

	newChecker()
	require.NoError(t, c.Close())
	require.NoError(t, collect(t, c).Members[0].Err)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections kept by a Collect after Close")
	}, 10*time.Second, 10*time.Millisecond)
}
