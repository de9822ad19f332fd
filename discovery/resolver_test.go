package discovery_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/discovery"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// A service looked up before the first listing arrived is filled in by that listing.
// It used to keep an empty snapshot after WaitReady in most tries.
func TestLookupBeforeFirstListing(t *testing.T) {
	ctx := etcdtest.Context(t, 60*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	putInstances(ctx, t, cli, p, inst("svc", "a", 1), inst("svc", "b", 2))
	for try := range 20 {
		res, err := discovery.NewResolver(cli, p)
		require.NoError(t, err)
		lb, err := discovery.NewBalancer(res, discovery.RoundRobin)
		require.NoError(t, err)
		_, _ = res.Discover("svc") // usually ErrNotReady; the lookup is what matters
		_, _ = lb.Pick("svc")
		require.NoError(t, res.WaitReady(ctx))
		got, err := res.Discover("svc")
		assert.NoError(t, err, "try %d", try)
		assert.Len(t, got, 2, "try %d: Discover after WaitReady", try)
		sel, err := lb.Pick("svc")
		assert.NoError(t, err, "try %d: Pick after WaitReady", try)
		sel.Report(nil)
		require.NoError(t, lb.Close())
		require.NoError(t, res.Close())
	}
}

// Values in etcd are untrusted: an instance whose port or weight is out of range is
// skipped like an undecodable one, and Register refuses a weight above MaxWeight.
func TestUntrustedValues(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	res := newResolver(t, ctx, cli, p)
	for key, value := range map[string]string{
		"svc/port0":      `{"address":"10.0.0.1","port":0}`,
		"svc/port-big":   `{"address":"10.0.0.1","port":70000}`,
		"svc/noaddr":     `{"port":80}`,
		"svc/negweight":  `{"address":"10.0.0.1","port":80,"weight":-5}`,
		"svc/hugeweight": fmt.Sprintf(`{"address":"10.0.0.1","port":80,"weight":%d}`, int64(1)<<62),
		"svc/ok":         `{"address":"10.0.0.1","port":80,"weight":3}`,
	} {
		_, err := cli.Put(ctx, p+key, value)
		require.NoError(t, err)
	}
	waitIDs(t, res, "svc", 2*time.Second, "ok")

	reg := newRegistrar(t, cli, p)
	big := inst("svc", "big", 1)
	big.Weight = discovery.MaxWeight + 1
	assert.ErrorIs(t, reg.Register(ctx, big), discovery.ErrInvalidInstance)
	big.Weight = discovery.MaxWeight
	assert.NoError(t, reg.Register(ctx, big))

	// The largest weights do not overflow the weighted round-robin: shares stay exact.
	lb := newBalancer(t, res, discovery.WeightedRoundRobin)
	other := inst("svc", "big2", 2)
	other.Weight = discovery.MaxWeight
	require.NoError(t, reg.Register(ctx, other))
	waitIDs(t, res, "svc", 2*time.Second, "big", "big2", "ok")
	counts := map[string]int{}
	for range 1000 {
		counts[pick(t, lb, "svc")]++
	}
	assert.InDelta(t, 500, counts["big"], 1)
	assert.InDelta(t, 500, counts["big2"], 1)
}

// A rewrite that changes nothing but the lease (or nothing at all) is not an Updated
// event.
func TestNoUpdateWithoutChange(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	res := newResolver(t, ctx, cli, p)
	events, err := res.Watch(ctx, "svc")
	require.NoError(t, err)
	next := func() discovery.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return discovery.Event{}
	}
	value := `{"address":"10.0.0.1","port":80,"metadata":{"zone":"a"}}`
	_, err = cli.Put(ctx, p+"svc/a", value)
	require.NoError(t, err)
	assert.Equal(t, discovery.Added, next().Type)

	l, err := cli.Grant(ctx, 30)
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"svc/a", value, clientv3.WithLease(l.ID)) // lease only
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"svc/a", `{"port":80,"address":"10.0.0.1","metadata":{"zone":"a"}}`) // same instance
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"svc/a", `{"address":"10.0.0.1","port":81,"metadata":{"zone":"a"}}`)
	require.NoError(t, err)
	ev := next()
	assert.Equal(t, discovery.Updated, ev.Type)
	assert.Equal(t, 81, ev.Instance.Port, "the first event after Added is the real change")
}

// A Watch reader that falls behind gets each instance's net change, and the queue holds
// no more than one event per instance.
func TestWatchMergesWhileBehind(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	res := newResolver(t, ctx, cli, p)
	events, err := res.Watch(ctx, "svc")
	require.NoError(t, err)
	put := func(id string, port int) {
		_, err := cli.Put(ctx, p+"svc/"+id, fmt.Sprintf(`{"address":"10.0.0.1","port":%d}`, port))
		require.NoError(t, err)
	}
	// Nobody reads while these happen.
	for port := 1; port <= 200; port++ {
		put("a", port)
	}
	for range 50 {
		put("b", 1)
		_, err := cli.Delete(ctx, p+"svc/b")
		require.NoError(t, err)
	}
	put("c", 1)
	put("d", 1) // the marker: everything before it has been queued once d arrives
	waitIDs(t, res, "svc", 5*time.Second, "a", "c", "d")

	var got []discovery.Event
	for {
		ev, ok := <-events
		require.True(t, ok, "the channel closed before d arrived: %v", got)
		got = append(got, ev)
		if ev.Instance.ID == "d" {
			break
		}
	}
	require.NotEmpty(t, got)
	assert.Equal(t, discovery.Added, got[0].Type)
	assert.Equal(t, "a", got[0].Instance.ID)
	rest := got[1:]
	if len(rest) > 0 && rest[0].Instance.ID == "a" {
		// The first Added was handed over before the updates: one Updated carries them.
		assert.Equal(t, discovery.Updated, rest[0].Type)
		assert.Equal(t, 200, rest[0].Instance.Port)
		rest = rest[1:]
	} else {
		assert.Equal(t, 200, got[0].Instance.Port)
	}
	require.Len(t, rest, 2, "then c and d only: %v", got)
	assert.Equal(t, discovery.Event{Type: discovery.Added, Instance: rest[0].Instance}, rest[0])
	assert.Equal(t, "c", rest[0].Instance.ID)
	assert.Equal(t, "d", rest[1].Instance.ID)
}

// A Watch event's Instance is the reader's own: editing its Metadata changes nothing
// the Resolver serves (nor another reader's events).
func TestWatchEventMetadataIsACopy(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	_, err := cli.Put(ctx, p+"svc/a", `{"address":"127.0.0.1","port":1001,"metadata":{"zone":"eu-1"}}`)
	require.NoError(t, err)
	res := newResolver(t, ctx, cli, p)
	waitIDs(t, res, "svc", 2*time.Second, "a")

	first, err := res.Watch(ctx, "svc")
	require.NoError(t, err)
	second, err := res.Watch(ctx, "svc")
	require.NoError(t, err)
	ev := <-first
	ev.Instance.Metadata["zone"] = "changed"
	other := <-second
	assert.Equal(t, "eu-1", other.Instance.Metadata["zone"], "another reader's event")
	insts, err := res.Discover("svc")
	require.NoError(t, err)
	assert.Equal(t, "eu-1", insts[0].Metadata["zone"], "the resolver's memory")

	// The same for changes after the initial events.
	_, err = cli.Put(ctx, p+"svc/b", `{"address":"127.0.0.1","port":1002,"metadata":{"zone":"eu-2"}}`)
	require.NoError(t, err)
	ev = <-first
	ev.Instance.Metadata["zone"] = "changed"
	other = <-second
	assert.Equal(t, "eu-2", other.Instance.Metadata["zone"])
	insts, err = res.Discover("svc")
	require.NoError(t, err)
	require.Len(t, insts, 2)
	assert.Equal(t, "eu-2", insts[1].Metadata["zone"])
}

// The TTL etcd grants is the one asked for: WithTTL refuses what etcd would raise.
func TestGrantedTTL(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	reg := newRegistrar(t, cli, p, discovery.WithTTL(2*time.Second))
	a := inst("svc", "a", 1)
	require.NoError(t, reg.Register(ctx, a))
	got, err := cli.Get(ctx, reg.Key(a))
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(got.Kvs[0].Lease))
	require.NoError(t, err)
	assert.EqualValues(t, 2, ttl.GrantedTTL)
	_, err = discovery.NewRegistrar(cli, p, discovery.WithTTL(time.Second))
	assert.ErrorIs(t, err, discovery.ErrInvalidArgument)
}

// An event is sent once what it announces is served: a reader that calls Discover on
// each event finds the instance added (or no longer finds the one removed).
func TestEventFollowsWhatDiscoverServes(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	res := newResolver(t, ctx, cli, p)
	require.NoError(t, res.WaitReady(ctx))
	events, err := res.Watch(ctx, "svc")
	require.NoError(t, err)
	const n = 100
	check := func(typ discovery.EventType, change func()) {
		go change()
		for range n {
			var ev discovery.Event
			select {
			case ev = <-events:
			case <-ctx.Done():
				t.Fatal("events missing")
			}
			require.Equal(t, typ, ev.Type)
			insts, err := res.Discover("svc")
			require.NoError(t, err)
			found := slices.ContainsFunc(insts, func(in discovery.Instance) bool { return in.ID == ev.Instance.ID })
			require.Equal(t, typ == discovery.Added, found, "%v %s: in Discover %v", typ, ev.Instance.ID, found)
		}
	}
	check(discovery.Added, func() {
		for i := range n {
			_, err := cli.Put(ctx, fmt.Sprintf("%ssvc/i%03d", p, i), fmt.Sprintf(`{"address":"127.0.0.1","port":%d}`, 1000+i))
			assert.NoError(t, err)
		}
	})
	check(discovery.Removed, func() {
		_, err := cli.Delete(ctx, p+"svc/", clientv3.WithPrefix())
		assert.NoError(t, err)
	})
}
