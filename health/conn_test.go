package health_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// countingProxy forwards TCP connections to a member and counts them.
type countingProxy struct {
	addr     string
	accepted atomic.Int64
	open     atomic.Int64
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &countingProxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.open.Add(1)
			mu.Lock()
			conns[c], conns[up] = struct{}{}, struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer p.open.Add(-1)
				var pipes sync.WaitGroup
				pipes.Go(func() { io.Copy(up, c); up.Close(); c.Close() })
				pipes.Go(func() { io.Copy(c, up); up.Close(); c.Close() })
				pipes.Wait()
			})
		}
	})
	return p
}

// viaURL describes every member as serving HTTP at url (gRPC status requests still go
// to the member's own endpoint).
type viaURL struct {
	health.StatusSource
	url string
}

func (s viaURL) Members(ctx context.Context) ([]health.Member, error) {
	ms, err := s.StatusSource.Members(ctx)
	for i := range ms {
		ms[i].ClientURLs = []string{s.url}
	}
	return ms, err
}

// Checks reuse the kept-alive connections to /livez and /readyz, and Close leaves none
// open.
func TestCheckerKeepsConnectionsUntilClose(t *testing.T) {
	cli := etcdtest.Client(t)
	p := newCountingProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := health.New(cli, health.WithSource(viaURL{health.NewEtcdSource(cli), "http://" + p.addr}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	for range 4 {
		r, err := c.Check(etcdtest.Context(t, 10*time.Second))
		require.NoError(t, err)
		require.Len(t, r.Members, 1)
		require.True(t, r.Members[0].Livez.OK, r.Members[0].Livez.Error)
		require.True(t, r.Members[0].Readyz.OK, r.Members[0].Readyz.Error)
	}
	// /livez and /readyz are asked at once: two connections, kept across checks.
	assert.LessOrEqual(t, p.accepted.Load(), int64(2), "connections made by 4 checks")

	require.NoError(t, c.Close())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.open.Load(), "connections left open after Close")
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close(), "Close is idempotent")

	_, err = c.Check(etcdtest.Context(t, 10*time.Second))
	require.NoError(t, err, "a Check after Close")
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.open.Load(), "connections left open by a Check after Close")
	}, 10*time.Second, 10*time.Millisecond)
}
