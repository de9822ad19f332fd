package memberhttp_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp/memberhttptest"
)

// twoMembers returns two proxies to the shared node, which stand for two members.
func twoMembers(t *testing.T) (a, b *memberhttptest.Proxy) {
	target := strings.TrimPrefix(etcdtest.Endpoints()[0], "http://")
	return memberhttptest.NewProxy(t, target), memberhttptest.NewProxy(t, target)
}

// getter is *memberhttp.Conns or *memberhttp.Share.
type getter interface {
	Get(id uint64, endpoint string) (*memberhttp.Conn, bool, error)
}

// use gets the connection to member id through p, the only connection p forwards.
func use(t *testing.T, c getter, id uint64, p *memberhttptest.Proxy) *memberhttp.Conn {
	t.Helper()
	mc, _, err := c.Get(id, "http://"+p.Addr)
	require.NoError(t, err)
	mc.ClientConn().Connect()
	require.Eventually(t, func() bool { return p.Open.Load() == 1 }, 10*time.Second, time.Millisecond, "connected")
	return mc
}

func noneOpen(t *testing.T, p *memberhttptest.Proxy, msg string) {
	t.Helper()
	assert.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Zero(ct, p.Open.Load(), msg) }, 10*time.Second, 10*time.Millisecond)
}

// Keep closes the connection of a member that left, at once when idle and when its
// request ends when in use, and keeps the others; a later Get of the member dials anew.
func TestConnsKeepClosesRemovedMembers(t *testing.T) {
	c := memberhttp.NewConns(etcdtest.Client(t))
	t.Cleanup(func() { c.Close() })
	a, b := twoMembers(t)
	use(t, c, 1, a).Release(false)
	use(t, c, 2, b).Release(false)
	c.Keep([]uint64{1})
	noneOpen(t, b, "the removed member's idle connection")
	assert.EqualValues(t, 1, a.Open.Load(), "the other member's connection")

	mc := use(t, c, 2, b)
	c.Keep([]uint64{1})
	assert.EqualValues(t, 1, b.Open.Load(), "a connection in use stays until its request ends")
	mc.Release(false)
	noneOpen(t, b, "the removed member's connection, once its request ended")

	again, fresh, err := c.Get(1, "http://"+a.Addr)
	require.NoError(t, err)
	assert.False(t, fresh, "a kept member's connection is reused")
	again.Release(false)
	assert.EqualValues(t, 1, a.Accepted.Load())
}

// Gets, Releases, Keeps and a Close at once leave no connection open once the last
// request ends, and Gets after Close keep none.
func TestConnsConcurrentUseAndClose(t *testing.T) {
	c := memberhttp.NewConns(etcdtest.Client(t))
	a, b := twoMembers(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				p, id := a, uint64(1)
				if (i+j)%2 == 1 {
					p, id = b, 2
				}
				mc, _, err := c.Get(id, "http://"+p.Addr)
				if !assert.NoError(t, err) {
					return
				}
				mc.ClientConn().Connect()
				if j%5 == 0 {
					c.Keep([]uint64{1})
				}
				mc.Release(j%7 == 0)
				if i == 0 && j == 10 {
					assert.NoError(t, c.Close())
				}
			}
		})
	}
	wg.Wait()
	noneOpen(t, a, "connections left open after Close")
	noneOpen(t, b, "connections left open after Close")
}

// Two users of a client's Conns (a health check and a metric probe, say) that reach one
// member at different endpoints keep a connection each, round after round, rather than
// redialling the member in turn. Keep closes both when the member leaves; a share's
// Close closes the one that only it asks for, the last share's the other, and a Get
// after Close keeps none.
func TestShareKeepsAConnectionPerEndpoint(t *testing.T) {
	cli := etcdtest.Client(t)
	health, metrics := memberhttp.ConnsOf(cli), memberhttp.ConnsOf(cli)
	t.Cleanup(func() { health.Close(); metrics.Close() })
	a, b := twoMembers(t) // two endpoints of member 1
	users := []struct {
		share *memberhttp.Share
		p     *memberhttptest.Proxy
	}{{health, a}, {metrics, b}}
	first := map[*memberhttp.Share]*grpc.ClientConn{}
	for round := range 5 {
		for _, u := range users {
			mc, fresh, err := u.share.Get(1, "http://"+u.p.Addr)
			require.NoError(t, err)
			mc.ClientConn().Connect()
			if round == 0 {
				first[u.share] = mc.ClientConn()
			} else {
				assert.False(t, fresh, "round %d: %s dialled again", round, u.p.Addr)
				assert.True(t, mc.ClientConn() == first[u.share], "round %d: %s: another connection", round, u.p.Addr)
			}
			mc.Release(false)
		}
	}
	for _, p := range []*memberhttptest.Proxy{a, b} {
		assert.EventuallyWithT(t, func(ct *assert.CollectT) { assert.EqualValues(ct, 1, p.Open.Load(), p.Addr) },
			10*time.Second, 10*time.Millisecond)
		assert.EqualValues(t, 1, p.Accepted.Load(), "%s: connections made", p.Addr)
	}

	metrics.Keep([]uint64{2})
	noneOpen(t, a, "the connection of a member that left, at the health check's endpoint")
	noneOpen(t, b, "the connection of a member that left, at the metric probe's endpoint")

	use(t, health, 1, a).Release(false)
	use(t, metrics, 1, b).Release(false)
	require.NoError(t, health.Close())
	noneOpen(t, a, "the connection only the closed share asked for")
	assert.EqualValues(t, 1, b.Open.Load(), "the other share's connection")
	again, fresh, err := metrics.Get(1, "http://"+b.Addr)
	require.NoError(t, err)
	assert.False(t, fresh, "the other share's connection is kept")
	again.Release(false)

	mc := use(t, health, 1, a)
	mc.Release(false)
	noneOpen(t, a, "a Get after Close keeps no connection")
	require.NoError(t, metrics.Close())
	noneOpen(t, b, "the last share's Close")
}

// A user that moves to another endpoint of a member drops the connection to the former
// one when no other user asks for it, and shares the connection of a user that asks for
// the new one.
func TestShareDropsEndpointsNoUserAsksFor(t *testing.T) {
	cli := etcdtest.Client(t)
	s1, s2 := memberhttp.ConnsOf(cli), memberhttp.ConnsOf(cli)
	t.Cleanup(func() { s1.Close(); s2.Close() })
	a, b := twoMembers(t)
	use(t, s1, 1, a).Release(false)
	kept := use(t, s2, 1, a)
	kept.Release(false)

	use(t, s1, 1, b).Release(false)
	assert.EqualValues(t, 1, a.Open.Load(), "the endpoint the other share still asks for")
	mc, fresh, err := s2.Get(1, "http://"+a.Addr)
	require.NoError(t, err)
	assert.False(t, fresh)
	assert.True(t, mc.ClientConn() == kept.ClientConn(), "the connection the other share keeps")
	mc.Release(false)

	mc, fresh, err = s2.Get(1, "http://"+b.Addr)
	require.NoError(t, err)
	assert.False(t, fresh, "the endpoint the other share asks for is shared")
	mc.Release(false)
	noneOpen(t, a, "the endpoint no share asks for any more")
	assert.EqualValues(t, 1, b.Accepted.Load())
}

// Two shares asking for different endpoints of one member, switching endpoints, failing,
// Keeping and Closing at once leave no connection open once both are closed.
func TestShareConcurrentUseAndClose(t *testing.T) {
	cli := etcdtest.Client(t)
	shares := []*memberhttp.Share{memberhttp.ConnsOf(cli), memberhttp.ConnsOf(cli)}
	a, b := twoMembers(t)
	c, _ := twoMembers(t)
	var wg sync.WaitGroup
	for i := range 8 {
		s := shares[i%2]
		wg.Go(func() {
			for j := range 20 {
				p := []*memberhttptest.Proxy{a, b}[i%2]
				if i%4 == 0 && j%3 == 0 {
					p = c
				}
				mc, _, err := s.Get(1, "http://"+p.Addr)
				if !assert.NoError(t, err) {
					return
				}
				mc.ClientConn().Connect()
				if j%9 == 0 {
					s.Keep([]uint64{2})
				}
				mc.Release(j%7 == 0)
				if i < 2 && j == 10 {
					assert.NoError(t, s.Close())
				}
			}
		})
	}
	wg.Wait()
	for _, p := range []*memberhttptest.Proxy{a, b, c} {
		noneOpen(t, p, "connections left open after both shares closed")
	}
}
