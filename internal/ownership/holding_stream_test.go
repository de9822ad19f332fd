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

// countWatchStreams counts in live the Watch streams open (see liveStream), and in most
// the most ever open at once.
func countWatchStreams(live, most *atomic.Int64) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || method != "/etcdserverpb.Watch/Watch" {
			return cs, err
		}
		n := live.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		ls := &liveStream{ClientStream: cs, live: live}
		context.AfterFunc(ctx, ls.end) // the stream ends with its context
		return ls, nil
	}
}

// The holdings of a session watch their keys on one stream, however many they are, each
// learns of its key's delete through it, and no stream is left open once they ended.
func TestHoldingsShareOneStream(t *testing.T) {
	t.Parallel()
	ctx := etcdtest.Context(t, 60*time.Second)
	pfx := etcdtest.Prefix(t)
	var live, most atomic.Int64
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(countWatchStreams(&live, &most))},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	// A long TTL: the stream is given up only after 6s without an answer (twice
	// CallTimeout), which a loaded machine does not make of a healthy member.
	holder := NewHolder(cli, 18*time.Second, nil, nil)
	defer holder.Close()
	const n = 20
	holdings, closeAll := watchedHoldings(t, ctx, holder, pfx, n)
	defer closeAll()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.EqualValues(ct, 1, live.Load(), "watch streams open")
	}, 10*time.Second, 10*time.Millisecond)

	// Every holding learns of its key's delete by another client: all of them watched,
	// on one stream.
	_, err = etcdtest.Client(t).Delete(ctx, pfx, clientv3.WithPrefix())
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		for i, h := range holdings {
			select {
			case <-h.Done():
				assert.ErrorIs(ct, h.Err(), ErrKeyLost, "holding %d", i)
			default:
				assert.Fail(ct, "holding still lasts", "holding %d", i)
			}
		}
		assert.Zero(ct, live.Load(), "watch streams open")
	}, 10*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 1, most.Load(), "watch streams ever open at once")
}
