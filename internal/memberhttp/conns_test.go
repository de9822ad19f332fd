package memberhttp_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp/memberhttptest"
)

// twoMembers returns two proxies to the shared node, which stand for two members.
func twoMembers(t *testing.T) (a, b *memberhttptest.Proxy) {
	target := strings.TrimPrefix(etcdtest.Endpoints()[0], "http://")
	return memberhttptest.NewProxy(t, target), memberhttptest.NewProxy(t, target)
}

func use(t *testing.T, c *memberhttp.Conns, id uint64, p *memberhttptest.Proxy) *memberhttp.Conn {
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
