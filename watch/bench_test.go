package watch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/watch"
)

// fillCache writes n keys under prefix, 100 to a transaction, and returns a ready Cache.
func fillCache(b *testing.B, n int) (*watch.Cache, string, []string) {
	b.Helper()
	cli := etcdtest.Client(b)
	ctx := etcdtest.Context(b, time.Minute)
	prefix := etcdtest.Prefix(b)
	keys := make([]string, n)
	var ops []clientv3.Op
	for i := range n {
		keys[i] = fmt.Sprintf("%sgroup%02d/key%04d", prefix, i%100, i)
		ops = append(ops, clientv3.OpPut(keys[i], "value-of-a-typical-size-0123456789"))
		if len(ops) == 100 || i == n-1 {
			if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	c, err := watch.NewCache(cli, prefix)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	return c, prefix, keys
}

// BenchmarkCacheGet: a read of one key from a Cache of 1000 keys (memory only).
func BenchmarkCacheGet(b *testing.B) {
	c, _, keys := fillCache(b, 1000)
	i := 0
	for b.Loop() {
		if _, ok := c.Get(keys[i%len(keys)]); !ok {
			b.Fatal("missing key")
		}
		i++
	}
}

// BenchmarkCacheGetParallel: the same from every CPU at once.
func BenchmarkCacheGetParallel(b *testing.B) {
	c, _, keys := fillCache(b, 1000)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Get(keys[i%len(keys)]); !ok {
				b.Error("missing key")
				return
			}
			i++
		}
	})
}

// BenchmarkCacheList: a sorted listing of 10 keys out of 1000, and of all 1000.
func BenchmarkCacheList(b *testing.B) {
	c, prefix, _ := fillCache(b, 1000)
	b.Run("10of1000", func(b *testing.B) {
		for b.Loop() {
			if n := len(c.List(prefix + "group42/")); n != 10 {
				b.Fatalf("listed %d", n)
			}
		}
	})
	b.Run("1000of1000", func(b *testing.B) {
		for b.Loop() {
			if n := len(c.List("")); n != 1000 {
				b.Fatalf("listed %d", n)
			}
		}
	})
}

// BenchmarkWatcherThroughput replays the same history of events through a raw
// clientv3.Watch and through a Watcher, alternately, and reports both rates and their
// ratio (watcher/raw; 1 means no overhead).
func BenchmarkWatcherThroughput(b *testing.B) {
	const events = 5000
	cli := etcdtest.Client(b)
	ctx := etcdtest.Context(b, 10*time.Minute)
	prefix := etcdtest.Prefix(b)
	var start int64
	var ops []clientv3.Op
	for i := range events {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s%05d", prefix, i), "value-of-a-typical-size-0123456789"))
		if len(ops) == 50 {
			resp, err := cli.Txn(ctx).Then(ops...).Commit()
			if err != nil {
				b.Fatal(err)
			}
			if start == 0 {
				start = resp.Header.Revision
			}
			ops = ops[:0]
		}
	}

	raw := func() time.Duration {
		t0 := time.Now()
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		got := 0
		for resp := range cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(start)) {
			if err := resp.Err(); err != nil {
				b.Fatal(err)
			}
			got += len(resp.Events)
			if got >= events {
				break
			}
		}
		return time.Since(t0)
	}
	ours := func() time.Duration {
		t0 := time.Now()
		w, err := watch.NewWatcher(cli, prefix, watch.WithPrefix(), watch.WithStartRevision(start))
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		got := 0
		for range w.Events() {
			got++
			if got >= events {
				break
			}
		}
		return time.Since(t0)
	}

	var rawTotal, oursTotal time.Duration
	n := 0
	for b.Loop() {
		// Alternate the order, so that neither side always runs on a warmer cache.
		if n%2 == 0 {
			rawTotal += raw()
			oursTotal += ours()
		} else {
			oursTotal += ours()
			rawTotal += raw()
		}
		n++
	}
	rawRate := float64(events*n) / rawTotal.Seconds()
	oursRate := float64(events*n) / oursTotal.Seconds()
	b.ReportMetric(rawRate, "raw-events/s")
	b.ReportMetric(oursRate, "watcher-events/s")
	b.ReportMetric(oursRate/rawRate, "ratio")
}
