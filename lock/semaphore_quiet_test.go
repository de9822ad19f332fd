package lock_test

import (
	"context"
	"strings"
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

// A waiter blocked behind a permit that is held reads again only when something is
// written: the permit given back earlier, the last revision it read, does not wake it
// over and over.
func TestSemaphoreWaiterQuiet(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	ctx := etcdtest.Context(t, 60*time.Second)
	key := etcdtest.Prefix(t) + "s"
	var txns atomic.Int64
	count := func(ctx context.Context, m string, req, rep any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
		if strings.HasSuffix(m, "/Txn") {
			txns.Add(1)
		}
		return inv(ctx, m, req, rep, cc, o...)
	}
	ccli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{c.Members[0].GRPCURL},
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithUnaryInterceptor(count)},
	})
	require.NoError(t, err)
	t.Cleanup(func() { ccli.Close() })
	a, err := lock.NewSemaphore(c.Client(0), key, 1)
	require.NoError(t, err)
	b, err := lock.NewSemaphore(c.Client(0), key, 1)
	require.NoError(t, err)
	sc, err := lock.NewSemaphore(ccli, key, 1)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(); b.Close(); sc.Close() })

	pa, err := a.Acquire(ctx)
	require.NoError(t, err)
	bgot := make(chan error, 1)
	go func() { _, err := b.Acquire(ctx); bgot <- err }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.EqualValues(ct, 2, etcdtest.Count(c.Client(0), key+"/"))
	}, 10*time.Second, 10*time.Millisecond)
	sctx, scancel := context.WithCancel(ctx)
	sgot := make(chan error, 1)
	go func() { _, err := sc.Acquire(sctx); sgot <- err }()
	defer func() { scancel(); <-sgot }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.EqualValues(ct, 3, etcdtest.Count(c.Client(0), key+"/"))
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, pa.Release(ctx))
	require.NoError(t, waitErr(t, bgot, 10*time.Second, "b"))
	base := txns.Load()
	assert.Never(t, func() bool { return txns.Load()-base > 5 }, 3*time.Second, 50*time.Millisecond,
		"blocked waiter re-reads while nothing changes")
}
