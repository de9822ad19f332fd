package discovery_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/discovery"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// countingClient returns a client that counts the unary etcd calls it makes.
func countingClient(b *testing.B) (*clientv3.Client, *atomic.Int64) {
	var n atomic.Int64
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   etcdtest.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				n.Add(1)
				return invoker(ctx, method, req, reply, cc, opts...)
			})},
	})
	require.NoError(b, err)
	b.Cleanup(func() { cli.Close() })
	return cli, &n
}

func benchResolver(b *testing.B, n int) (*discovery.Resolver, *atomic.Int64) {
	ctx := etcdtest.Context(b, 30*time.Second)
	cli, calls := countingClient(b)
	p := etcdtest.Prefix(b)
	var insts []discovery.Instance
	for i := range n {
		insts = append(insts, inst("bench", fmt.Sprintf("i%03d", i), 1000+i))
	}
	putInstances(ctx, b, etcdtest.Client(b), p, insts...)
	res, err := discovery.NewResolver(cli, p)
	require.NoError(b, err)
	b.Cleanup(func() { res.Close() })
	require.NoError(b, res.WaitReady(ctx))
	require.Eventually(b, func() bool { got, _ := res.Discover("bench"); return len(got) == n }, 5*time.Second, time.Millisecond)
	return res, calls
}

func BenchmarkDiscover(b *testing.B) {
	res, calls := benchResolver(b, 10)
	start := calls.Load()
	for b.Loop() {
		if _, err := res.Discover("bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(calls.Load()-start)/float64(b.N), "etcd-calls/op")
}

func BenchmarkPick(b *testing.B) {
	for _, s := range []discovery.Strategy{discovery.RoundRobin, discovery.Random, discovery.WeightedRoundRobin, discovery.PowerOfTwo, discovery.ConsistentHash} {
		b.Run(s.String(), func(b *testing.B) {
			res, calls := benchResolver(b, 10)
			lb, err := discovery.NewBalancer(res, s)
			require.NoError(b, err)
			defer lb.Close()
			start := calls.Load()
			b.ReportAllocs()
			for b.Loop() {
				sel, err := lb.PickKey("bench", "user-42")
				if err != nil {
					b.Fatal(err)
				}
				sel.Report(nil)
			}
			b.ReportMetric(float64(calls.Load()-start)/float64(b.N), "etcd-calls/op")
			b.ReportMetric(1e9/(float64(b.Elapsed().Nanoseconds())/float64(b.N))/1e6, "Mpicks/s")
		})
	}
}

// BenchmarkRegisterVisible measures the time from Register to the Added event in a
// resolver on another client (ns/op also counts the Deregister after each).
func BenchmarkRegisterVisible(b *testing.B) {
	ctx := etcdtest.Context(b, 5*time.Minute)
	p := etcdtest.Prefix(b)
	reg, err := discovery.NewRegistrar(etcdtest.Client(b), p)
	require.NoError(b, err)
	defer reg.Close()
	res, err := discovery.NewResolver(etcdtest.Client(b), p)
	require.NoError(b, err)
	defer res.Close()
	require.NoError(b, res.WaitReady(ctx))
	events, err := res.Watch(ctx, "vis")
	require.NoError(b, err)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		in := inst("vis", fmt.Sprint("i", i), 1)
		i++
		start := time.Now()
		if err := reg.Register(ctx, in); err != nil {
			b.Fatal(err)
		}
		for ev := range events {
			if ev.Type == discovery.Added && ev.Instance.ID == in.ID {
				break
			}
		}
		lat = append(lat, time.Since(start))
		// Keep one registration at a time, so the figure is not about many leases.
		if err := reg.Deregister(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkRecovery measures how long a registration takes to be back in etcd after
// someone else deletes its key or revokes its lease (each op registers a fresh
// instance, so no backoff from earlier rounds applies; ns/op includes a settling pause).
func BenchmarkRecovery(b *testing.B) {
	for _, fault := range []string{"delete", "revoke"} {
		b.Run(fault, func(b *testing.B) {
			ctx := etcdtest.Context(b, 5*time.Minute)
			p := etcdtest.Prefix(b)
			reg, err := discovery.NewRegistrar(etcdtest.Client(b), p, discovery.WithTTL(5*time.Second))
			require.NoError(b, err)
			defer reg.Close()
			other := etcdtest.Client(b)
			var lat []time.Duration
			i := 0
			for b.Loop() {
				in := inst("svc", fmt.Sprint("i", i), 1)
				i++
				require.NoError(b, reg.Register(ctx, in))
				// Let the Registrar's watch catch up with the store (etcd syncs a watch
				// that starts in the past every 100ms), so the figure is the steady state.
				settle := time.NewTimer(300 * time.Millisecond)
				<-settle.C
				key := reg.Key(in)
				resp, err := other.Get(ctx, key)
				require.NoError(b, err)
				wctx, cancel := context.WithCancel(ctx)
				wch := other.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1))
				start := time.Now()
				if fault == "delete" {
					_, err = other.Delete(ctx, key)
				} else {
					_, err = other.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
				}
				require.NoError(b, err)
			wait:
				for wr := range wch {
					for _, ev := range wr.Events {
						if ev.Type == clientv3.EventTypePut {
							break wait
						}
					}
				}
				lat = append(lat, time.Since(start))
				cancel()
				require.NoError(b, reg.Deregister(ctx, in))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
