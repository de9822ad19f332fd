package lock_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// watchCountingClient returns a client of member i of c alone, closed when t ends, and
// the count of the watch streams it opened.
func watchCountingClient(t *testing.T, c *etcdtest.Cluster, i int) (*clientv3.Client, *atomic.Int64) {
	t.Helper()
	watches := new(atomic.Int64)
	countWatches := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err == nil && method == "/etcdserverpb.Watch/Watch" {
			watches.Add(1)
		}
		return cs, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{c.Members[i].GRPCURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(countWatches)},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli, watches
}

// A member that stops answering while the rest of the cluster serves (a frozen etcd
// process, a dead machine whose connections stay open) must not stall the lock for as
// long as it is silent: the waiter whose watch runs through it takes the lock once the
// holder unlocks. Its client knows a healthy member too: the silent watch is reopened
// and the reads the silent member does not answer are hedged through the other.
func TestSilentMember(t *testing.T) {
	const ttl = 4 * time.Second
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 120*time.Second)
	key := etcdtest.Prefix(t) + "l"
	admin := c.Client(2)
	// A Lock that fails for want of etcd's answer on a starved machine (its grant not
	// answered within the TTL, its lease lost to slow renewals) is tried again: it proves
	// nothing either way. One that does not return at all is what this test is about.
	// A reopened watch is balanced over both endpoints and may land on the silent member
	// again, a few seconds each time: the wait allows for several in a row.
	lockRetry := func(m *lock.Mutex, got chan error, what string) {
		t.Helper()
		for {
			err := waitErr(t, got, 8*ttl, what)
			if err == nil {
				return
			}
			if !errors.Is(err, lock.ErrSessionLost) && !errors.Is(err, context.DeadlineExceeded) {
				require.NoError(t, err, what)
			}
			go func() { got <- m.Lock(ctx) }()
		}
	}
	a := newMutex(t, c.Client(0), key, lock.WithTTL(ttl))
	agot := make(chan error, 1)
	go func() { agot <- a.Lock(ctx) }()
	lockRetry(a, agot, "first Lock")

	// b waits through member 1 alone, then learns of member 2, then member 1 falls silent.
	// b's watches are counted: its wait must be watching through member 1 before the
	// client learns of member 2, or the watch could open through the healthy member and
	// the test would prove nothing.
	bcli, watches := watchCountingClient(t, c, 1)
	b := newMutex(t, bcli, key, lock.WithTTL(ttl))
	bgot := make(chan error, 1)
	go func() { bgot <- b.Lock(ctx) }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Empty(ct, bgot, "b's Lock returned before it waited")
		assert.EqualValues(ct, 2, etcdtest.Count(admin, key+"/"))
		assert.Positive(ct, watches.Load(), "b watches")
	}, 3*ttl, 10*time.Millisecond)
	bcli.SetEndpoints(c.Members[1].GRPCURL, c.Members[2].GRPCURL)
	c.Blackhole(1)
	defer c.Unblackhole(1)
	require.NoError(t, a.Unlock(ctx))

	// b takes the lock although the watch it waited on is silent.
	lockRetry(b, bgot, "the waiter behind a silent member")

	// Unblackhole drops member 1's connections: an Unlock that fails with them is retried.
	c.Unblackhole(1)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		if err := b.Unlock(ctx); !errors.Is(err, lock.ErrNotHeld) {
			assert.NoError(ct, err)
		}
	}, 3*ttl, 50*time.Millisecond)
}
