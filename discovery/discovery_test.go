package discovery_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/discovery"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func inst(svc, id string, port int) discovery.Instance {
	return discovery.Instance{Service: svc, ID: id, Address: "127.0.0.1", Port: port}
}

func newRegistrar(t *testing.T, cli *clientv3.Client, prefix string, opts ...discovery.Option) *discovery.Registrar {
	t.Helper()
	r, err := discovery.NewRegistrar(cli, prefix, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func newResolver(t *testing.T, ctx context.Context, cli *clientv3.Client, prefix string) *discovery.Resolver {
	t.Helper()
	r, err := discovery.NewResolver(cli, prefix)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	require.NoError(t, r.WaitReady(ctx))
	return r
}

func ids(t *testing.T, r *discovery.Resolver, svc string) []string {
	t.Helper()
	insts, err := r.Discover(svc)
	require.NoError(t, err)
	out := []string{}
	for _, i := range insts {
		out = append(out, i.ID)
	}
	return out
}

func waitIDs(t *testing.T, r *discovery.Resolver, svc string, within time.Duration, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		insts, err := r.Discover(svc)
		if !assert.NoError(c, err) {
			return
		}
		have := []string{}
		for _, i := range insts {
			have = append(have, i.ID)
		}
		assert.Equal(c, want, have)
	}, within, 5*time.Millisecond, "instances of %s", svc)
}

func TestRegisterDiscoverDeregister(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	reg := newRegistrar(t, cli, p, discovery.WithTTL(5*time.Second))
	res := newResolver(t, ctx, etcdtest.Client(t), p)

	a := inst("payment", "a", 8001)
	a.Metadata = map[string]string{"zone": "eu-1"}
	a.Weight = 3
	require.NoError(t, reg.Register(ctx, a))
	require.NoError(t, reg.Register(ctx, inst("payment", "b", 8002)))
	require.NoError(t, reg.Register(ctx, inst("search", "a", 9001)))

	// Stored as JSON under <prefix>/<service>/<id>, attached to a lease.
	got, err := cli.Get(ctx, p+"payment/a")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	assert.NotZero(t, got.Kvs[0].Lease)
	var stored discovery.Instance
	require.NoError(t, json.Unmarshal(got.Kvs[0].Value, &stored))
	assert.Equal(t, a, stored)

	waitIDs(t, res, "payment", 2*time.Second, "a", "b")
	waitIDs(t, res, "search", 2*time.Second, "a")
	insts, err := res.Discover("payment")
	require.NoError(t, err)
	assert.Equal(t, a, insts[0])
	assert.Equal(t, "127.0.0.1:8001", insts[0].Addr())
	waitIDs(t, res, "unknown", time.Second)

	// Re-registering replaces the value.
	a.Port = 8011
	require.NoError(t, reg.Register(ctx, a))
	require.Eventually(t, func() bool {
		insts, _ := res.Discover("payment")
		return len(insts) > 0 && insts[0].Port == 8011
	}, 2*time.Second, 5*time.Millisecond)

	require.NoError(t, reg.Deregister(ctx, a))
	waitIDs(t, res, "payment", 2*time.Second, "b")
	got, err = cli.Get(ctx, p+"payment/a")
	require.NoError(t, err)
	assert.Empty(t, got.Kvs)
	assert.ErrorIs(t, reg.Deregister(ctx, a), discovery.ErrNotRegistered)

	// Close deregisters the rest.
	require.NoError(t, reg.Close())
	waitIDs(t, res, "payment", 2*time.Second)
	waitIDs(t, res, "search", 2*time.Second)
	assert.ErrorIs(t, reg.Register(ctx, a), discovery.ErrClosed)
	require.NoError(t, reg.Close(), "Close is idempotent")
}

func TestDrain(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	reg := newRegistrar(t, cli, p)
	res := newResolver(t, ctx, cli, p)
	lb, err := discovery.NewBalancer(res, discovery.RoundRobin)
	require.NoError(t, err)
	defer lb.Close()

	a, b := inst("api", "a", 1), inst("api", "b", 2)
	require.NoError(t, reg.Register(ctx, a))
	require.NoError(t, reg.Register(ctx, b))
	waitIDs(t, res, "api", 2*time.Second, "a", "b")

	require.NoError(t, reg.Drain(ctx, a))
	require.Eventually(t, func() bool {
		insts, _ := res.Discover("api")
		return len(insts) == 2 && insts[0].Drained
	}, 2*time.Second, 5*time.Millisecond, "drained stays registered, marked")
	for range 10 {
		sel, err := lb.Pick("api")
		require.NoError(t, err)
		assert.Equal(t, "b", sel.Instance.ID, "a drained instance is not picked")
		sel.Report(nil)
	}
	require.NoError(t, reg.Undrain(ctx, a))
	require.Eventually(t, func() bool {
		seen := map[string]bool{}
		for range 4 {
			sel, err := lb.Pick("api")
			if err != nil {
				return false
			}
			seen[sel.Instance.ID] = true
			sel.Report(nil)
		}
		return seen["a"] && seen["b"]
	}, 2*time.Second, 5*time.Millisecond)
	assert.ErrorIs(t, reg.Drain(ctx, inst("api", "zzz", 1)), discovery.ErrNotRegistered)
}

func TestBadInput(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	reg := newRegistrar(t, cli, p)

	for name, tc := range map[string]struct {
		inst  discovery.Instance
		field string
	}{
		"empty service":   {discovery.Instance{ID: "a", Address: "h", Port: 1}, "service"},
		"slash service":   {discovery.Instance{Service: "a/b", ID: "a", Address: "h", Port: 1}, "service"},
		"empty id":        {discovery.Instance{Service: "s", Address: "h", Port: 1}, "id"},
		"no address":      {discovery.Instance{Service: "s", ID: "a", Port: 1}, "address"},
		"port zero":       {discovery.Instance{Service: "s", ID: "a", Address: "h"}, "port"},
		"port too big":    {discovery.Instance{Service: "s", ID: "a", Address: "h", Port: 65536}, "port"},
		"negative weight": {discovery.Instance{Service: "s", ID: "a", Address: "h", Port: 1, Weight: -1}, "weight"},
	} {
		t.Run(name, func(t *testing.T) {
			err := reg.Register(ctx, tc.inst)
			require.ErrorIs(t, err, discovery.ErrInvalidInstance)
			require.ErrorIs(t, err, discovery.ErrInvalidArgument)
			var ie *discovery.InstanceError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tc.field, ie.Field)
			assert.Contains(t, err.Error(), tc.field)
		})
	}

	_, err := discovery.NewRegistrar(nil, p)
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)
	_, err = discovery.NewRegistrar(cli, "")
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)
	_, err = discovery.NewRegistrar(cli, p, discovery.WithTTL(500*time.Millisecond))
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)
	_, err = discovery.NewResolver(cli, "/")
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)

	res := newResolver(t, ctx, cli, p)
	_, err = res.Discover("")
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)
	_, err = discovery.NewBalancer(res, discovery.Strategy(99))
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)
	_, err = discovery.NewBalancer(res, discovery.RoundRobin, discovery.WithCooldown(0))
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)
	_, err = discovery.NewBalancer(res, discovery.RoundRobin, discovery.WithHealthCheck(discovery.TCPCheck(), 0))
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)

	// A nil option, a nil checker, and an option the constructor does not use are errors
	// that name the option.
	for name, build := range map[string]func() error{
		"option 1 is nil": func() error {
			_, err := discovery.NewRegistrar(cli, p, discovery.WithTTL(5*time.Second), nil)
			return err
		},
		"option 0 is nil": func() error { _, err := discovery.NewResolver(cli, p, nil); return err },
		"nil checker": func() error {
			_, err := discovery.NewBalancer(res, discovery.RoundRobin, discovery.WithHealthCheck(nil, time.Second))
			return err
		},
		"WithTTL applies to a Registrar, not a Resolver": func() error {
			_, err := discovery.NewResolver(cli, p, discovery.WithTTL(5*time.Second))
			return err
		},
		"WithCooldown applies to a Balancer, not a Registrar": func() error {
			_, err := discovery.NewRegistrar(cli, p, discovery.WithCooldown(time.Second))
			return err
		},
		"WithBackoff applies to a Registrar, not a Balancer": func() error {
			_, err := discovery.NewBalancer(res, discovery.Random, discovery.WithBackoff(time.Millisecond, time.Second))
			return err
		},
		"WithVirtualNodes applies to ConsistentHash only": func() error {
			_, err := discovery.NewBalancer(res, discovery.RoundRobin, discovery.WithVirtualNodes(10))
			return err
		},
		"WithIdleTimeout": func() error {
			_, err := discovery.NewBalancer(res, discovery.RoundRobin, discovery.WithIdleTimeout(0))
			return err
		},
		"WithVirtualNodes: 4611686018427387903 is outside 1-10000": func() error {
			_, err := discovery.NewBalancer(res, discovery.ConsistentHash, discovery.WithVirtualNodes(math.MaxInt/2))
			return err
		},
		"WithTTL: 1s is below 2s": func() error {
			_, err := discovery.NewRegistrar(cli, p, discovery.WithTTL(time.Second))
			return err
		},
		"WithIdleTimeout: 1ns is below 10ms": func() error {
			_, err := discovery.NewBalancer(res, discovery.RoundRobin, discovery.WithIdleTimeout(time.Nanosecond))
			return err
		},
	} {
		err := build()
		assert.ErrorIs(t, err, discovery.ErrInvalidArgument, name)
		assert.ErrorContains(t, err, name)
	}
	lbCH, err := discovery.NewBalancer(res, discovery.ConsistentHash, discovery.WithVirtualNodes(10), discovery.WithLogger(zap.NewNop()))
	require.NoError(t, err)
	require.NoError(t, lbCH.Close())

	// A value another tool wrote that is not an instance is skipped; the rest works.
	_, err = cli.Put(ctx, p+"svc/broken", "{not json")
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"svc/ok", `{"address":"10.0.0.1","port":80}`)
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"stray-key-without-id", "x")
	require.NoError(t, err)
	waitIDs(t, res, "svc", 2*time.Second, "ok")
	lb, err := discovery.NewBalancer(res, discovery.RoundRobin)
	require.NoError(t, err)
	defer lb.Close()
	_, err = lb.Pick("nothing-here")
	assert.ErrorIs(t, err, discovery.ErrNoInstance)
}

func TestResolverWatch(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	reg := newRegistrar(t, cli, p)
	require.NoError(t, reg.Register(ctx, inst("svc", "a", 1)))
	res := newResolver(t, ctx, cli, p)

	wctx, cancel := context.WithCancel(ctx)
	events, err := res.Watch(wctx, "svc")
	require.NoError(t, err)
	next := func() discovery.Event {
		select {
		case ev, ok := <-events:
			require.True(t, ok)
			return ev
		case <-time.After(3 * time.Second):
			t.Fatal("no event")
		}
		return discovery.Event{}
	}
	ev := next()
	assert.Equal(t, discovery.Added, ev.Type)
	assert.Equal(t, "a", ev.Instance.ID)

	require.NoError(t, reg.Register(ctx, inst("svc", "b", 2)))
	ev = next()
	assert.Equal(t, discovery.Added, ev.Type)
	assert.Equal(t, "b", ev.Instance.ID)
	require.NoError(t, reg.Drain(ctx, inst("svc", "b", 2)))
	ev = next()
	assert.Equal(t, discovery.Updated, ev.Type)
	assert.True(t, ev.Instance.Drained)
	require.NoError(t, reg.Deregister(ctx, inst("svc", "a", 1)))
	ev = next()
	assert.Equal(t, discovery.Removed, ev.Type)
	assert.Equal(t, "a", ev.Instance.ID)

	cancel()
	for range events {
	}
	// Closing the resolver closes the other watch channels.
	events2, err := res.Watch(ctx, "svc")
	require.NoError(t, err)
	require.NoError(t, res.Close())
	for range events2 {
	}
	_, err = res.Watch(ctx, "svc")
	assert.ErrorIs(t, err, discovery.ErrClosed)
}

// Guarantee 2: the registration comes back after its lease is revoked or its key deleted
// by someone else.
func TestFaultRevokeAndDelete(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	cli, other := etcdtest.Client(t), etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	reg := newRegistrar(t, cli, p, discovery.WithTTL(3*time.Second))
	a := inst("svc", "a", 1)
	require.NoError(t, reg.Register(ctx, a))
	key := reg.Key(a)

	leaseOf := func() clientv3.LeaseID {
		id, _ := leaseOfKey(ctx, other, key)
		return id
	}
	alive := func(id clientv3.LeaseID) bool {
		ttl, err := other.TimeToLive(ctx, id)
		return err == nil && ttl.TTL > 0
	}

	// How fast it comes back is measured by BenchmarkRecovery; here, that it does.
	first := leaseOf()
	require.NotZero(t, first)
	_, err := other.Revoke(ctx, first)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		id := leaseOf()
		assert.NotZero(c, id)
		assert.NotEqual(c, first, id)
		assert.True(c, alive(id))
	}, 4*time.Second, 10*time.Millisecond, "re-registered after revoke")

	second := leaseOf()
	_, err = other.Delete(ctx, key)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return leaseOf() != 0 }, 4*time.Second, 5*time.Millisecond, "re-registered after delete")
	assert.Equal(t, second, leaseOf(), "same lease")

	// Overwritten without a lease (another tool): put back under the lease.
	_, err = other.Put(ctx, key, `{"address":"evil","port":1}`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return leaseOf() == second }, 4*time.Second, 5*time.Millisecond)
}

func TestNotReady(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	require.NoError(t, err)
	defer cli.Close()
	res, err := discovery.NewResolver(cli, "/nowhere")
	require.NoError(t, err)
	defer res.Close()
	_, err = res.Discover("svc")
	assert.ErrorIs(t, err, discovery.ErrNotReady)
	lb, err := discovery.NewBalancer(res, discovery.RoundRobin)
	require.NoError(t, err)
	defer lb.Close()
	_, err = lb.Pick("svc")
	assert.ErrorIs(t, err, discovery.ErrNotReady)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, res.WaitReady(ctx), context.DeadlineExceeded)
}
