package main

import (
	"context"
	"sync"
	"time"

	"github.com/etcd-monitor/etcd-monitor/barrier"
)

func init() {
	register("barrier", "a barrier held during a migration, and three workers through a double barrier", runBarrier)
}

func runBarrier(ctx context.Context, e *env) error {
	key := "/examples/barrier/" + e.nodeID
	gate, err := barrier.New(e.cli, key+"/migration", barrier.WithTTL(5*time.Second))
	if err != nil {
		return err
	}
	defer gate.Close()
	if err := gate.Hold(ctx); err != nil {
		return err
	}
	e.printf("coordinator holds the barrier while it migrates")
	waited := make(chan error, 1)
	go func() { waited <- gate.Wait(ctx) }()
	e.printf("coordinator releases the barrier")
	if err := gate.Release(ctx); err != nil {
		return err
	}
	if err := <-waited; err != nil {
		return err
	}
	e.printf("waiting workers went on")

	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			b, err := barrier.NewDouble(e.cli, key+"/phase", 3, barrier.WithTTL(5*time.Second))
			if err != nil {
				errs <- err
				return
			}
			defer b.Close()
			if err := b.Enter(ctx); err != nil {
				errs <- err
				return
			}
			e.printf("worker %d: all three entered", i)
			if err := b.Leave(ctx); err != nil {
				errs <- err
				return
			}
			e.printf("worker %d: all three left", i)
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
