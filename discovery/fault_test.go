package discovery_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/discovery"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// etcdIDs lists the instance IDs of svc in etcd itself, retrying (with a pause) while
// etcd does not answer.
func etcdIDs(ctx context.Context, t *testing.T, cli *clientv3.Client, prefix, svc string) []string {
	t.Helper()
	for {
		out, err := listIDs(ctx, cli, prefix, svc)
		if err == nil {
			return out
		}
		pause := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			pause.Stop()
			require.NoError(t, ctx.Err(), "etcd unreachable: %v", err)
		case <-pause.C:
		}
	}
}

// listIDs lists the instance IDs of svc in etcd once.
func listIDs(ctx context.Context, cli *clientv3.Client, prefix, svc string) ([]string, error) {
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, prefix+svc+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key[len(prefix+svc+"/"):]))
	}
	sort.Strings(out)
	return out, nil
}

// liveLease reports whether key exists and is attached to a lease etcd still has.
func liveLease(ctx context.Context, cli *clientv3.Client, key string) bool {
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, key)
	if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return false
	}
	ttl, err := cli.TimeToLive(gctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	return err == nil && ttl.TTL > 0
}

// TestFaultCluster checks guarantees 1, 3, 4 and 5 on one 3-node cluster.
func TestFaultCluster(t *testing.T) {
	// Waits out TTLs and outages in parallel with the tests that wait on TTLs; the only
	// parallel test that starts a cluster (the etcd test framework allows one at a time).
	t.Parallel()
	c := etcdtest.NewCluster(t, 3)
	const ttl = 2 * time.Second

	// 5: a resolver cut off while instances change and history is compacted converges
	// to etcd's set after it reconnects.
	t.Run("ResolverConvergesAfterCompaction", func(t *testing.T) {
		ctx := etcdtest.Context(t, 90*time.Second)
		p := etcdtest.Prefix(t)
		// Cut off a follower: Compact goes through the leader's own client.
		lead := c.Leader()
		i, writerIdx := (lead+1)%3, (lead+2)%3
		reg := newRegistrar(t, c.Client(writerIdx), p, discovery.WithTTL(5*time.Second))
		for _, id := range []string{"a", "b", "c"} {
			require.NoError(t, reg.Register(ctx, inst("svc", id, 1)))
		}
		res := newResolver(t, ctx, c.Client(i), p)
		waitIDs(t, res, "svc", 3*time.Second, "a", "b", "c")

		c.PauseConnections(i)
		require.Eventually(t, res.Stale, 10*time.Second, 10*time.Millisecond)
		require.NoError(t, reg.Deregister(ctx, inst("svc", "a", 1)))
		require.NoError(t, reg.Register(ctx, inst("svc", "d", 1)))
		require.NoError(t, reg.Drain(ctx, inst("svc", "b", 1)))
		writer := c.Client(writerIdx)
		resp, err := writer.Put(ctx, p+"other/x", `{"address":"h","port":1}`)
		require.NoError(t, err)
		c.Compact(ctx, resp.Header.Revision)
		assert.Equal(t, []string{"a", "b", "c"}, ids(t, res, "svc"), "serves the last set while cut off")
		c.ResumeConnections(i)

		want := etcdIDs(ctx, t, writer, p, "svc")
		require.Equal(t, []string{"b", "c", "d"}, want)
		waitIDs(t, res, "svc", 10*time.Second, want...)
		waitIDs(t, res, "other", 2*time.Second, "x")
		insts, err := res.Discover("svc")
		require.NoError(t, err)
		assert.True(t, insts[0].Drained, "b's drain arrived")
	})

	// 4: with the leader stopped, registrations stay and resolvers answer throughout.
	t.Run("LeaderStop", func(t *testing.T) {
		ctx := etcdtest.Context(t, 90*time.Second)
		p := etcdtest.Prefix(t)
		reg := newRegistrar(t, c.ClusterClient(), p, discovery.WithTTL(ttl))
		require.NoError(t, reg.Register(ctx, inst("svc", "a", 1)))
		require.NoError(t, reg.Register(ctx, inst("svc", "b", 1)))
		res := newResolver(t, ctx, c.ClusterClient(), p)
		waitIDs(t, res, "svc", 3*time.Second, "a", "b")

		stop := make(chan struct{})
		failures := make(chan string, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				insts, err := res.Discover("svc")
				if err != nil || len(insts) != 2 {
					select {
					case failures <- "Discover during leader loss: " + errString(err) + " " + idsOf(insts):
					default:
					}
				}
			}
		}()
		stopped := c.StopLeader()
		// Hold the outage past two TTLs: the leases must be renewed through the new leader.
		hold := time.NewTimer(2 * ttl)
		<-hold.C
		cli := c.ClusterClient()
		assert.Equal(t, []string{"a", "b"}, etcdIDs(ctx, t, cli, p, "svc"))
		assert.True(t, liveLease(ctx, cli, p+"svc/a"))
		c.RestartMember(stopped)
		close(stop)
		<-done
		select {
		case f := <-failures:
			t.Error(f)
		default:
		}
		assert.Equal(t, []string{"a", "b"}, ids(t, res, "svc"))
	})

	// 1: a registrant that dies without deregistering leaves every resolver within
	// TTL + 1s.
	t.Run("RegistrantDies", func(t *testing.T) {
		ctx := etcdtest.Context(t, 90*time.Second)
		p := etcdtest.Prefix(t)
		regCli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
		require.NoError(t, err)
		reg := newRegistrar(t, regCli, p, discovery.WithTTL(ttl))
		require.NoError(t, reg.Register(ctx, inst("svc", "dies", 1)))
		var resolvers []*discovery.Resolver
		for i := range 3 {
			r := newResolver(t, ctx, c.Client(i), p)
			waitIDs(t, r, "svc", 3*time.Second, "dies")
			resolvers = append(resolvers, r)
		}
		start := time.Now()
		require.NoError(t, regCli.Close())
		// Within TTL + 1s: the deadline is twice that.
		for _, r := range resolvers {
			waitIDs(t, r, "svc", 2*(ttl+time.Second))
		}
		t.Logf("gone from every resolver after %v", time.Since(start))
	})

	// The registrant alone is cut off from etcd (its connection swallows everything)
	// for longer than the TTL: the lease expires, the instance leaves, and once the
	// connection works again the registration comes back by itself.
	t.Run("RegistrantBlackholed", func(t *testing.T) {
		ctx := etcdtest.Context(t, 90*time.Second)
		p := etcdtest.Prefix(t)
		lead := c.Leader()
		i := (lead + 1) % 3
		reg := newRegistrar(t, c.Client(i), p, discovery.WithTTL(ttl), discovery.WithBackoff(50*time.Millisecond, time.Second))
		require.NoError(t, reg.Register(ctx, inst("svc", "cut", 1)))
		res := newResolver(t, ctx, c.Client(lead), p)
		waitIDs(t, res, "svc", 3*time.Second, "cut")

		c.Blackhole(i)
		waitIDs(t, res, "svc", 3*(ttl+time.Second))
		c.Unblackhole(i)
		start := time.Now()
		waitIDs(t, res, "svc", 20*time.Second, "cut")
		t.Logf("back %v after the connection healed", time.Since(start))
		cli := c.ClusterClient()
		require.Eventually(t, func() bool { return liveLease(ctx, cli, p+"svc/cut") }, 5*time.Second, 20*time.Millisecond)
	})

	// 3: every member down for longer than the TTL, then back: every registration
	// returns by itself.
	t.Run("AllMembersDown", func(t *testing.T) {
		ctx := etcdtest.Context(t, 90*time.Second)
		p := etcdtest.Prefix(t)
		reg := newRegistrar(t, c.ClusterClient(), p, discovery.WithTTL(ttl), discovery.WithBackoff(50*time.Millisecond, time.Second))
		names := []string{"a", "b", "c", "d"}
		for _, id := range names {
			require.NoError(t, reg.Register(ctx, inst("svc", id, 1)))
		}
		res := newResolver(t, ctx, c.ClusterClient(), p)
		waitIDs(t, res, "svc", 3*time.Second, names...)

		for i := range c.Members {
			c.StopMember(i)
		}
		outage := time.NewTimer(3 * ttl)
		<-outage.C
		// Restart without waiting for each one: a lone member has no leader to wait for.
		for i := range c.Members[:len(c.Members)-1] {
			require.NoError(t, c.Members[i].Restart(t))
		}
		c.RestartMember(len(c.Members) - 1)
		c.Leader()
		start := time.Now()

		cli := c.ClusterClient()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			have, err := listIDs(ctx, cli, p, "svc")
			assert.NoError(c, err)
			assert.Equal(c, names, have)
			for _, id := range names {
				assert.True(c, liveLease(ctx, cli, p+"svc/"+id), id)
			}
		}, 20*time.Second, 20*time.Millisecond, "every registration is back on a live lease")
		t.Logf("all back %v after the cluster", time.Since(start))
		waitIDs(t, res, "svc", 10*time.Second, names...)
		// And they stay: after two more TTLs they are still there, on live leases. A 2s
		// lease whose renewals a loaded machine delays past its deadline, while the
		// restarted cluster settles, is given up and its registrations written again on
		// a new one (as they were after the outage): there may be a moment when they are
		// being written again, but they are back within a few seconds.
		hold := time.NewTimer(2 * ttl)
		<-hold.C
		assert.EventuallyWithT(t, func(c *assert.CollectT) {
			have, err := listIDs(ctx, cli, p, "svc")
			assert.NoError(c, err)
			assert.Equal(c, names, have)
			for _, id := range names {
				assert.True(c, liveLease(ctx, cli, p+"svc/"+id), id)
			}
		}, 10*time.Second, 20*time.Millisecond, "the registrations stay")
	})
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func idsOf(insts []discovery.Instance) string {
	s := "["
	for _, i := range insts {
		s += i.ID + " "
	}
	return s + "]"
}

// Registrar.Close stays bounded while a Register or a Drain is blocked on a write that
// etcd never answers (the Registrar's only connection is blackholed).
func TestFaultCloseBehindBlockedWrite(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	ctx := etcdtest.Context(t, 60*time.Second)
	for _, blocked := range []string{"register", "drain"} {
		t.Run(blocked, func(t *testing.T) {
			p := etcdtest.Prefix(t)
			cli := c.Client(0)
			reg, err := discovery.NewRegistrar(cli, p, discovery.WithTTL(2*time.Second))
			require.NoError(t, err)
			a := inst("svc", "a", 1)
			require.NoError(t, reg.Register(ctx, a))
			c.Blackhole(0)
			defer c.Unblackhole(0)
			// The bridge forwards what a copy already waiting for data reads next; wait
			// until requests really go nowhere.
			require.Eventually(t, func() bool {
				gctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				_, err := cli.Get(gctx, "probe")
				return err != nil
			}, 10*time.Second, 10*time.Millisecond)

			callErr := make(chan error, 1)
			go func() {
				// No deadline of its own: only Close can end it.
				if blocked == "drain" {
					callErr <- reg.Drain(context.Background(), a)
				} else {
					callErr <- reg.Register(context.Background(), inst("svc", "b", 2))
				}
			}()
			// Let the call reach etcd's connection before closing.
			select {
			case err := <-callErr:
				t.Fatalf("%s returned while etcd is unreachable: %v", blocked, err)
			case <-time.After(300 * time.Millisecond):
			}
			closed := make(chan error, 1)
			go func() { closed <- reg.Close() }()
			// With a 2s TTL, Close is documented to return within about 2s + 3s; allow three times that.
			select {
			case <-closed:
			case <-time.After(15 * time.Second):
				t.Fatal("Close did not return")
			}
			select {
			case err := <-callErr:
				assert.ErrorIs(t, err, discovery.ErrClosed, "the blocked %s fails", blocked)
			case <-time.After(15 * time.Second):
				t.Fatalf("the blocked %s did not return after Close", blocked)
			}
		})
	}
}

// The lease is revoked and re-granted while every write of the Registrar hangs unsent
// (a connection that swallows requests): the re-grant hook's write must not hold the
// registration, so Close still returns within its bound.
func TestFaultCloseWhileRegrantWriteHangs(t *testing.T) {
	t.Parallel() // waits on TTLs; its own prefix and clients
	ctx := etcdtest.Context(t, 60*time.Second)
	p := etcdtest.Prefix(t)
	cli, faults := etcdtest.FaultClient(t)
	const ttl = 2 * time.Second
	reg, err := discovery.NewRegistrar(cli, p, discovery.WithTTL(ttl))
	require.NoError(t, err)
	a := inst("svc", "a", 1)
	require.NoError(t, reg.Register(ctx, a))

	admin := etcdtest.Client(t)
	got, err := admin.Get(ctx, reg.Key(a))
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	old := clientv3.LeaseID(got.Kvs[0].Lease)
	before, err := admin.Leases(ctx)
	require.NoError(t, err)
	known := map[clientv3.LeaseID]bool{}
	for _, l := range before.Leases {
		known[l.ID] = true
	}

	faults.Stall(etcdtest.IsPut)
	defer faults.Stall(nil)
	_, err = admin.Revoke(ctx, old)
	require.NoError(t, err)
	// The Keeper re-grants (grants are not stalled) and its hook writes the key; that
	// write and the run loop's hang, but each ends with its deadline and the attempts go
	// on (a hook write that held the registration forever froze them at two).
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		now, err := admin.Leases(ctx)
		if !assert.NoError(c, err) {
			return
		}
		fresh := false
		for _, l := range now.Leases {
			fresh = fresh || !known[l.ID]
		}
		assert.True(c, fresh, "a new lease")
		assert.GreaterOrEqual(c, faults.Hits(), 4, "write attempts go on")
	}, 15*time.Second, 20*time.Millisecond)

	closed := make(chan struct{})
	go func() { reg.Close(); close(closed) }()
	// Documented bound: about three seconds whatever the TTL; allow five times that.
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("Close did not return")
	}
}
