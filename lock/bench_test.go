package lock_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

// countingClient returns a client of the shared node that counts its unary RPCs (etcd
// round trips; keep-alives and watches are streams and are not counted).
func countingClient(b *testing.B) (*clientv3.Client, *atomic.Int64) {
	b.Helper()
	var n atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		n.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   etcdtest.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(count)},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli, &n
}

// BenchmarkUncontended interleaves an uncontended Lock+Unlock of our Mutex with one of
// etcd's concurrency.Mutex in every iteration, so both see the same machine load, and
// reports each one's time per op, our throughput relative to etcd's (ratio), and our
// etcd round trips per acquire and per release.
func BenchmarkUncontended(b *testing.B) {
	ctx := context.Background()
	cli, rpcs := countingClient(b)
	key := etcdtest.Prefix(b) + "l"
	ours, err := lock.New(cli, key+"-ours")
	if err != nil {
		b.Fatal(err)
	}
	defer ours.Close()
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	theirs := concurrency.NewMutex(s, key+"-etcd")
	// Warm up: our first Lock grants the lease.
	if err := ours.Lock(ctx); err != nil {
		b.Fatal(err)
	}
	if err := ours.Unlock(ctx); err != nil {
		b.Fatal(err)
	}

	var oursT, theirsT time.Duration
	var acquireRT, releaseRT int64
	n := 0
	runOurs := func() {
		start := time.Now()
		before := rpcs.Load()
		if err := ours.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		locked := rpcs.Load()
		if err := ours.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
		acquireRT += locked - before
		releaseRT += rpcs.Load() - locked
		oursT += time.Since(start)
	}
	runTheirs := func() {
		start := time.Now()
		if err := theirs.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := theirs.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
		theirsT += time.Since(start)
	}
	for b.Loop() {
		// Alternate which goes first, so neither gains from the other's warm-up.
		if n%2 == 0 {
			runOurs()
			runTheirs()
		} else {
			runTheirs()
			runOurs()
		}
		n++
	}
	b.ReportMetric(float64(oursT.Nanoseconds())/float64(n), "ours-ns/op")
	b.ReportMetric(float64(theirsT.Nanoseconds())/float64(n), "etcd-ns/op")
	b.ReportMetric(float64(theirsT)/float64(oursT), "ratio")
	b.ReportMetric(float64(acquireRT)/float64(n), "acquire-rt/op")
	b.ReportMetric(float64(releaseRT)/float64(n), "release-rt/op")
}

// BenchmarkContended8 measures lock handoffs per second among 8 clients competing for
// one Mutex, each critical section a Do-guarded write.
func BenchmarkContended8(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := etcdtest.Prefix(b) + "l"
	const clients = 8
	sections := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		cli := etcdtest.Client(b)
		m, err := lock.New(cli, key)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := m.Lock(ctx); err != nil {
					return
				}
				_, err := m.Do(ctx, clientv3.OpPut(key+"-counter", "x"))
				_ = m.Unlock(context.WithoutCancel(ctx))
				if err != nil {
					return
				}
				select {
				case sections <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	start := time.Now()
	n := 0
	for b.Loop() {
		<-sections
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "sections/s")
	cancel()
	wg.Wait()
}
