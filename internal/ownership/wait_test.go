package ownership

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// liveStream counts a Watch stream until it ends: it fails, or its context ends.
type liveStream struct {
	grpc.ClientStream
	live  *atomic.Int64
	ended atomic.Bool
}

func (s *liveStream) end() {
	if s.ended.CompareAndSwap(false, true) {
		s.live.Add(-1)
	}
}

func (s *liveStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.end()
	}
	return err
}

// A wait leaves no watch stream open once it has returned, even when a progress request
// races the end of its watch.
func TestWaitLeavesNoStream(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	key := etcdtest.Prefix(t) + "w"
	var live, most atomic.Int64
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{c.Members[0].GRPCURL}, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(countWatchStreams(&live, &most))},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	r, err := cli.Put(context.Background(), key, "v")
	require.NoError(t, err)
	for i := 0; i < 200; i++ {
		// Progress is requested every millisecond while the wait ends, at one moment or
		// another of the cycle.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%20)*time.Millisecond/4+time.Millisecond)
		_ = waitDelete(ctx, cli, key, false, r.Header.Revision, 2*time.Millisecond)
		cancel()
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, live.Load(), "watch streams open")
	}, 10*time.Second, 10*time.Millisecond)
}
