package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp/memberhttptest"
)

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
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := health.New(cli, health.WithSource(viaURL{health.NewEtcdSource(cli), "http://" + p.Addr}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	for range 4 {
		r, err := c.Check(etcdtest.Context(t, 10*time.Second))
		require.NoError(t, err)
		require.Len(t, r.Members, 1)
		require.True(t, r.Members[0].Livez.OK, r.Members[0].Livez.Error)
		require.True(t, r.Members[0].Readyz.OK, r.Members[0].Readyz.Error)
	}
	// /livez, then /readyz, on one connection kept across checks.
	assert.EqualValues(t, 1, p.Accepted.Load(), "connections made by 4 checks")

	require.NoError(t, c.Close())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open after Close")
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close(), "Close is idempotent")

	_, err = c.Check(etcdtest.Context(t, 10*time.Second))
	require.NoError(t, err, "a Check after Close")
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open by a Check after Close")
	}, 10*time.Second, 10*time.Millisecond)
}

func sharedName(t *testing.T) string {
	t.Helper()
	resp, err := etcdtest.Client(t).MemberList(etcdtest.Context(t, 5*time.Second))
	require.NoError(t, err)
	require.Len(t, resp.Members, 1)
	return resp.Members[0].Name
}

// Checks ask each member's status through one kept gRPC connection, which Close closes.
func TestCheckerKeepsStatusConnectionsUntilClose(t *testing.T) {
	cli := etcdtest.Client(t)
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := health.New(cli, health.WithEndpoints(map[string]string{sharedName(t): "http://" + p.Addr}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	for range 4 {
		r, err := c.Check(etcdtest.Context(t, 10*time.Second))
		require.NoError(t, err)
		require.True(t, r.Members[0].Reachable, r.Members[0].Error)
	}
	assert.EqualValues(t, 1, p.Accepted.Load(), "connections made by 4 checks")
	require.NoError(t, c.Close())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open after Close")
	}, 10*time.Second, 10*time.Millisecond)
	r, err := c.Check(etcdtest.Context(t, 10*time.Second))
	require.NoError(t, err, "a Check after Close")
	require.True(t, r.Members[0].Reachable, r.Members[0].Error)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open by a Check after Close")
	}, 10*time.Second, 10*time.Millisecond)
}

// A member that drops its connections and refuses new ones is unreachable; once it
// accepts again the very next check reaches it, rather than waiting out gRPC's
// reconnection backoff on the kept connection.
func TestCheckerRedialsAfterMemberReturns(t *testing.T) {
	cli := etcdtest.Client(t)
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := health.New(cli, health.WithTimeout(time.Second), health.WithEndpoints(map[string]string{sharedName(t): "http://" + p.Addr}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	check := func() health.MemberStatus {
		r, err := c.Check(etcdtest.Context(t, 10*time.Second))
		require.NoError(t, err)
		return r.Members[0]
	}
	require.True(t, check().Reachable)
	p.Down.Store(true)
	p.Drop()
	require.False(t, check().Reachable, "a member refusing connections")
	p.Down.Store(false)
	m := check()
	assert.True(t, m.Reachable, "the check right after the member is back: %s", m.Error)
}

// Closing the client closes the connections NewEtcdSource keeps, even without Close.
func TestEtcdSourceConnectionsCloseWithTheClient(t *testing.T) {
	cli, err := etcdtest.NewClient()
	require.NoError(t, err)
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	src := health.NewEtcdSource(cli)
	ms, err := src.Members(etcdtest.Context(t, 5*time.Second))
	require.NoError(t, err)
	ms[0].Endpoint = "http://" + p.Addr
	_, err = src.Status(etcdtest.Context(t, 5*time.Second), ms[0])
	require.NoError(t, err)
	require.EqualValues(t, 1, p.Open.Load())
	require.NoError(t, cli.Close())
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open after the client closed")
	}, 10*time.Second, 10*time.Millisecond)
}

// A Close while a check waits for a member's /livez leaves no connection open once the
// check ends: neither the one in flight nor one the check makes afterwards (/readyz).
func TestCheckerCloseDuringCheckLeavesNoConnection(t *testing.T) {
	cli := etcdtest.Client(t)
	p := memberhttptest.NewProxy(t, strings.TrimPrefix(etcdtest.Endpoints()[0], "http://"))
	c, err := health.New(cli, health.WithTimeout(5*time.Second), health.WithSource(viaURL{health.NewEtcdSource(cli), "http://" + p.Addr}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	p.Hold()
	done := make(chan *health.Report, 1)
	go func() {
		r, err := c.Check(etcdtest.Context(t, 10*time.Second))
		assert.NoError(t, err)
		done <- r
	}()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.EqualValues(ct, 1, p.Accepted.Load(), "the check's /livez request")
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, c.Close())
	p.Release()
	r := <-done
	require.NotNil(t, r)
	require.True(t, r.Members[0].Readyz.OK, r.Members[0].Readyz.Error)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, p.Open.Load(), "connections left open by a check that Close overlapped")
	}, 10*time.Second, 10*time.Millisecond)
}
