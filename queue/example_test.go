package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/queue"
)

// A producer enqueues jobs; a consumer claims each, processes it and acknowledges it.
// An ID makes a retried Enqueue harmless.
func ExampleQueue() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()

	q, err := queue.New(cli, "/example/queue/jobs", queue.WithVisibilityTimeout(10*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	for _, job := range []string{"resize a.png", "resize b.png", "resize a.png"} {
		if _, err := q.Enqueue(ctx, []byte(job), queue.WithID(job)); err != nil {
			fmt.Println(err)
			return
		}
	}
	n, _ := q.Len(ctx)
	fmt.Println("queued:", n)
	for range n {
		it, err := q.Dequeue(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s (delivery %d)\n", it.Value(), it.Deliveries())
		if err := it.Ack(ctx); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// queued: 2
	// resize a.png (delivery 1)
	// resize b.png (delivery 1)
}

// Lower priority numbers come first; Nack gives an item back at its place.
func ExamplePriorityQueue() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()

	q, err := queue.NewPriority(cli, "/example/queue/alerts")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	_, _ = q.Enqueue(ctx, 2, []byte("disk 80%"))
	_, _ = q.Enqueue(ctx, 0, []byte("leader lost"))
	_, _ = q.Enqueue(ctx, 1, []byte("latency high"))

	it, _ := q.Dequeue(ctx)
	fmt.Println("first:", string(it.Value()))
	_ = it.Nack(ctx) // not now
	for range 3 {
		it, err := q.Dequeue(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%d %s (delivery %d)\n", it.Priority(), it.Value(), it.Deliveries())
		_ = it.Ack(ctx)
	}
	// Output:
	// first: leader lost
	// 0 leader lost (delivery 2)
	// 1 latency high (delivery 1)
	// 2 disk 80% (delivery 1)
}
