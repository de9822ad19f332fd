package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/etcd-monitor/etcd-monitor/queue"
)

func init() {
	register("queue", "a work queue: two consumers, one crashes holding an item, which is delivered again", runQueue)
}

func runQueue(ctx context.Context, e *env) error {
	prefix := "/examples/queue/" + e.nodeID
	q, err := queue.New(e.cli, prefix, queue.WithVisibilityTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer q.Close()
	for i := range 6 {
		// A retried Enqueue with the same ID adds nothing.
		if _, err := q.Enqueue(ctx, fmt.Appendf(nil, "job %d", i), queue.WithID(fmt.Sprintf("job-%d", i))); err != nil {
			return err
		}
	}
	n, err := q.Len(ctx)
	if err != nil {
		return err
	}
	e.printf("enqueued %d jobs", n)

	// A consumer that crashes: it claims a job and never acknowledges it.
	crashed, err := queue.New(e.cli, prefix, queue.WithVisibilityTimeout(2*time.Second))
	if err != nil {
		return err
	}
	it, err := crashed.Dequeue(ctx)
	if err != nil {
		return err
	}
	e.printf("consumer A claimed %q and crashed (its claim expires in 2s)", it.Value())

	var mu sync.Mutex
	var wg sync.WaitGroup
	done := 0
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, name := range []string{"B", "C"} {
		wg.Go(func() {
			for {
				it, err := q.Dequeue(cctx)
				if err != nil {
					return
				}
				if err := it.Ack(cctx); err != nil && !errors.Is(err, context.Canceled) {
					e.printf("consumer %s: %v", name, err)
					continue
				}
				mu.Lock()
				done++
				e.printf("consumer %s processed %q (delivery %d)", name, it.Value(), it.Deliveries())
				if done == 6 {
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	n, err = q.Len(ctx)
	if err != nil {
		return err
	}
	e.printf("all jobs acknowledged, %d left; the crashed consumer's job was redone", n)
	return nil
}
