package metrics_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// countingProxy forwards TCP connections to a member and counts them, so that a test
// can tell how many connections a client made and how many it left open.
type countingProxy struct {
	addr     string
	accepted atomic.Int64
	open     atomic.Int64
	down     atomic.Bool // refuse (close at once) new connections

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &countingProxy{addr: l.Addr().String(), conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		p.drop()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			p.accepted.Add(1)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.open.Add(1)
			p.track(c, up)
			wg.Go(func() {
				defer p.open.Add(-1)
				var pipes sync.WaitGroup
				pipes.Go(func() { io.Copy(up, c); up.Close(); c.Close() })
				pipes.Go(func() { io.Copy(c, up); up.Close(); c.Close() })
				pipes.Wait()
				p.untrack(c, up)
			})
		}
	})
	return p
}

func (p *countingProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

func (p *countingProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// drop closes every connection in flight, as a member that stops does.
func (p *countingProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// proxiedCollector is a Collector of the shared node that reaches it (probes and
// scrapes) only through p.
func proxiedCollector(t *testing.T, opts ...metrics.Option) (*metrics.Collector, *countingProxy) {
	t.Helper()
	cli := etcdtest.Client(t)
	name := sharedMemberName(t, cli)
	p := newCountingProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := metrics.New(cli, append([]metrics.Option{metrics.WithSamples(2),
		metrics.WithEndpoints(map[string]string{name: "http://" + p.addr}),
		metrics.WithMetricsURLs(map[string]string{name: "http://" + p.addr + "/metrics"})}, opts...)...)
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
	assert.EqualValues(t, 2, p.accepted.Load(), "connections made by 4 collections (one for probes, one for /metrics)")
	assert.EqualValues(t, 2, p.open.Load())

	require.NoError(t, c.Close())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.open.Load(), "connections left open after Close")
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close(), "Close is idempotent")

	// A collection after Close still works, and keeps nothing.
	s := collect(t, c)
	require.NoError(t, s.Members[0].Err)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.open.Load(), "connections left open by a collection after Close")
	}, 10*time.Second, 10*time.Millisecond)
}

// A member that drops its connections and refuses new ones fails the collection; once
// it accepts again the very next collection probes and scrapes it without an error,
// rather than waiting out gRPC's reconnection backoff on the kept connection.
func TestCollectorRedialsAfterMemberReturns(t *testing.T) {
	c, p := proxiedCollector(t, metrics.WithTimeout(time.Second))
	s := collect(t, c)
	require.NoError(t, s.Members[0].Err)

	p.down.Store(true)
	p.drop()
	s = collect(t, c)
	require.Error(t, s.Members[0].Err, "a member refusing connections")
	assert.Positive(t, s.Members[0].Latency.Errors)

	p.down.Store(false)
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
	p := newCountingProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := metrics.New(cli, metrics.WithSamples(1), metrics.WithEndpoints(map[string]string{name: "http://" + p.addr}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s := collect(t, c)
	require.NoError(t, s.Members[0].Err)
	require.EqualValues(t, 1, p.open.Load(), "the probe connection")
	require.NoError(t, cli.Close())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.open.Load(), "probe connections left open after the client closed")
	}, 10*time.Second, 10*time.Millisecond)
}
