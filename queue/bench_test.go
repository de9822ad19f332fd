package queue_test

import (
	"context"
	"fmt"
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
