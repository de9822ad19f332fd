package lock_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/tests/v3/framework/integration"
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

// contender is one of the 8 clients of BenchmarkContended8: ours or etcd's mutex.
type contender struct {
	lock, unlock func(context.Context) error
	write        func(context.Context) error
}

func runContended(b *testing.B, contenders []contender) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sections := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := c.lock(ctx); err != nil {
					return
				}
				err := c.write(ctx)
				_ = c.unlock(context.WithoutCancel(ctx))
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

// BenchmarkContended8 measures critical sections per second among 8 clients competing
// for one lock on a 3-node in-process cluster (clients spread over the members), each
// section one write guarded by ownership: ours, then etcd's concurrency.Mutex on the
// same cluster for comparison.
func BenchmarkContended8(b *testing.B) {
	integration.BeforeTestExternal(b)
	c := integration.NewCluster(b, &integration.ClusterConfig{Size: 3})
	b.Cleanup(func() { c.Terminate(b) })
	c.WaitLeader(b)
	const clients = 8
	newClient := func(i int) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[i%3].GRPCURL},
			DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cli.Close() })
		return cli
	}
	b.Run("ours", func(b *testing.B) {
		key := etcdtest.Prefix(b) + "l"
		var cs []contender
		for i := 0; i < clients; i++ {
			m, err := lock.New(newClient(i), key)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			cs = append(cs, contender{lock: m.Lock, unlock: m.Unlock, write: func(ctx context.Context) error {
				_, err := m.Do(ctx, clientv3.OpPut(key+"-counter", "x"))
				return err
			}})
		}
		runContended(b, cs)
	})
	b.Run("etcd", func(b *testing.B) {
		key := etcdtest.Prefix(b) + "l"
		var cs []contender
		for i := 0; i < clients; i++ {
			cli := newClient(i)
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			m := concurrency.NewMutex(s, key)
			cs = append(cs, contender{lock: m.Lock, unlock: m.Unlock, write: func(ctx context.Context) error {
				_, err := cli.Txn(ctx).If(m.IsOwner()).Then(clientv3.OpPut(key+"-counter", "x")).Commit()
				return err
			}})
		}
		runContended(b, cs)
	})
}
