package discovery_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/discovery"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// keyWrites counts the puts and deletes of key from now on.
func keyWrites(t *testing.T, ctx context.Context, cli *clientv3.Client, key string) (puts, deletes *atomic.Int64) {
	t.Helper()
	puts, deletes = new(atomic.Int64), new(atomic.Int64)
	wctx, cancel := context.WithCancel(ctx)
	wch := cli.Watch(wctx, key)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					puts.Add(1)
				} else {
					deletes.Add(1)
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	// The watch is in place once a progress notification comes back through it.
	require.NoError(t, cli.RequestProgress(ctx))
	return puts, deletes
}

func leaseOfKey(ctx context.Context, cli *clientv3.Client, key string) (clientv3.LeaseID, bool) {
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return 0, false
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease), true
}

// Two Registrars holding the same instance (a rolling restart with stable IDs) do not
// fight over the key: the newest registration wins, the older one yields until the key
// is free again, and the number of writes stays bounded.
func TestSameKeyTwoRegistrars(t *testing.T) {
	t.Parallel() // waits on TTLs; its own prefix and clients
	ctx := etcdtest.Context(t, 30*time.Second)
	p := etcdtest.Prefix(t)
	observer := etcdtest.Client(t)
	const ttl = 2 * time.Second
	oldReg := newRegistrar(t, etcdtest.Client(t), p, discovery.WithTTL(ttl))
	newReg := newRegistrar(t, etcdtest.Client(t), p, discovery.WithTTL(ttl))
	a := inst("svc", "a", 1)
	key := oldReg.Key(a)
	require.NoError(t, oldReg.Register(ctx, a))
	puts, deletes := keyWrites(t, ctx, observer, key)
	require.NoError(t, newReg.Register(ctx, a))
	winner, ok := leaseOfKey(ctx, observer, key)
	require.True(t, ok)

	// Watch the key for two TTLs (each side re-reads it every TTL/2 too).
	quiet := time.NewTimer(2 * ttl)
	<-quiet.C
	t.Logf("%d writes in %v", puts.Load(), 2*ttl)
	assert.LessOrEqual(t, puts.Load(), int64(3), "writes stay bounded")
	got, ok := leaseOfKey(ctx, observer, key)
	assert.True(t, ok)
	assert.Equal(t, winner, got, "the newest registration keeps the key")

	// The old one closing does not delete the new one's key.
	require.NoError(t, oldReg.Close())
	got, ok = leaseOfKey(ctx, observer, key)
	assert.True(t, ok, "still registered after the older Registrar closed")
	assert.Equal(t, winner, got)
	assert.Zero(t, deletes.Load())
}

// When the winner leaves, a Registrar that yielded writes the key again.
func TestSameKeyTakeOver(t *testing.T) {
	t.Parallel() // waits on TTLs; its own prefix and clients
	ctx := etcdtest.Context(t, 30*time.Second)
	p := etcdtest.Prefix(t)
	observer := etcdtest.Client(t)
	first := newRegistrar(t, etcdtest.Client(t), p, discovery.WithTTL(2*time.Second))
	second := newRegistrar(t, etcdtest.Client(t), p, discovery.WithTTL(2*time.Second))
	a := inst("svc", "a", 1)
	key := first.Key(a)
	require.NoError(t, first.Register(ctx, a))
	require.NoError(t, second.Register(ctx, a))
	taken, ok := leaseOfKey(ctx, observer, key)
	require.True(t, ok)
	require.NoError(t, second.Deregister(ctx, a))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		id, ok := leaseOfKey(ctx, observer, key)
		assert.True(c, ok)
		assert.NotEqual(c, taken, id)
		assert.True(c, liveLease(ctx, observer, key))
	}, 6*time.Second, 50*time.Millisecond, "the remaining Registrar writes the key again")
}

// Every rewrite backs off, successful or not: against a tool that overwrites the key
// (without a lease) each time the Registrar writes it, the Registrar's writes stay few.
func TestRewritesBackOff(t *testing.T) {
	t.Parallel() // waits on TTLs; its own prefix and clients
	ctx := etcdtest.Context(t, 30*time.Second)
	p := etcdtest.Prefix(t)
	tool := etcdtest.Client(t)
	reg := newRegistrar(t, etcdtest.Client(t), p, discovery.WithTTL(10*time.Second),
		discovery.WithBackoff(50*time.Millisecond, 5*time.Second))
	a := inst("svc", "a", 1)
	key := reg.Key(a)
	require.NoError(t, reg.Register(ctx, a))

	var rewrites atomic.Int64
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := tool.Watch(wctx, key)
	require.NoError(t, tool.RequestProgress(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut && ev.Kv.Lease != 0 {
					rewrites.Add(1)
					_, _ = tool.Put(wctx, key, `{"address":"other","port":2}`)
				}
			}
		}
	}()
	_, err := tool.Put(ctx, key, `{"address":"other","port":2}`)
	require.NoError(t, err)
	window := time.NewTimer(3 * time.Second)
	<-window.C
	cancel()
	<-done
	// 50ms doubling (with jitter down to half) sums past 3s after about 8 writes; a
	// write that resets the delay on success would make hundreds.
	t.Logf("%d rewrites in 3s", rewrites.Load())
	assert.Positive(t, rewrites.Load(), "the Registrar does rewrite")
	assert.LessOrEqual(t, rewrites.Load(), int64(12))
}
