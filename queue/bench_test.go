package queue_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	recipe "go.etcd.io/etcd/client/v3/experimental/recipes"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/queue"
)

// One op is an item through the queue: enqueued, then taken off by a consumer (claimed
// and acknowledged for ours; deleted at once for etcd's recipe, which can lose it).
func BenchmarkQueue(b *testing.B) {
	cli := etcdtest.Client(b)
	ctx := context.Background()
	b.Run("ours", func(b *testing.B) {
		q, err := queue.New(cli, etcdtest.Prefix(b))
		if err != nil {
			b.Fatal(err)
		}
		defer q.Close()
		for b.Loop() {
			if _, err := q.Enqueue(ctx, []byte("job")); err != nil {
				b.Fatal(err)
			}
			it, err := q.Dequeue(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := it.Ack(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("recipes", func(b *testing.B) {
		q := recipe.NewQueue(cli, etcdtest.Prefix(b))
		for b.Loop() {
			if err := q.Enqueue("job"); err != nil {
				b.Fatal(err)
			}
			if _, err := q.Dequeue(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The same through priority queues, cycling over four priorities with a backlog of 16
// items, so that Dequeue has to pick.
func BenchmarkPriorityQueue(b *testing.B) {
	cli := etcdtest.Client(b)
	ctx := context.Background()
	b.Run("ours", func(b *testing.B) {
		q, err := queue.NewPriority(cli, etcdtest.Prefix(b))
		if err != nil {
			b.Fatal(err)
		}
		defer q.Close()
		for i := range 16 {
			if _, err := q.Enqueue(ctx, i%4, fmt.Appendf(nil, "%d", i)); err != nil {
				b.Fatal(err)
			}
		}
		i := 0
		for b.Loop() {
			i++
			if _, err := q.Enqueue(ctx, i%4, []byte("job")); err != nil {
				b.Fatal(err)
			}
			it, err := q.Dequeue(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := it.Ack(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("recipes", func(b *testing.B) {
		q := recipe.NewPriorityQueue(cli, etcdtest.Prefix(b))
		for i := range 16 {
			if err := q.Enqueue(fmt.Sprint(i), uint16(i%4)); err != nil {
				b.Fatal(err)
			}
		}
		i := 0
		for b.Loop() {
			i++
			if err := q.Enqueue("job", uint16(i%4)); err != nil {
				b.Fatal(err)
			}
			if _, err := q.Dequeue(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Five consumers drain a backlog of 20 items (one op), each item claimed and
// acknowledged for ours, deleted for etcd's recipe. Ours claims in strict enqueue order
// (the consumers contend for the oldest item); etcd's recipe contends for the oldest key
// as well, and loses the item if the consumer dies.
func BenchmarkQueueFiveConsumers(b *testing.B) {
	const backlog, consumers = 20, 5
	cli := etcdtest.Client(b)
	ctx := context.Background()
	b.Run("ours", func(b *testing.B) {
		prefix := etcdtest.Prefix(b)
		prod, err := queue.New(cli, prefix)
		if err != nil {
			b.Fatal(err)
		}
		defer prod.Close()
		var qs []*queue.Queue
		for range consumers {
			q, err := queue.New(etcdtest.Client(b), prefix)
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			qs = append(qs, q)
		}
		for b.Loop() {
			for range backlog {
				if _, err := prod.Enqueue(ctx, []byte("job")); err != nil {
					b.Fatal(err)
				}
			}
			var left atomic.Int64
			left.Store(backlog)
			var wg sync.WaitGroup
			for _, q := range qs {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						it, err := q.Dequeue(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						if err := it.Ack(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		}
	})
	b.Run("recipes", func(b *testing.B) {
		prefix := etcdtest.Prefix(b)
		prod := recipe.NewQueue(cli, prefix)
		var qs []*recipe.Queue
		for range consumers {
			qs = append(qs, recipe.NewQueue(etcdtest.Client(b), prefix))
		}
		for b.Loop() {
			for range backlog {
				if err := prod.Enqueue("job"); err != nil {
					b.Fatal(err)
				}
			}
			var left atomic.Int64
			left.Store(backlog)
			var wg sync.WaitGroup
			for _, q := range qs {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						if _, err := q.Dequeue(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		}
	})
}
