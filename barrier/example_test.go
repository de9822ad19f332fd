package barrier_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/etcd-monitor/etcd-monitor/barrier"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// A coordinator holds a barrier while it prepares; workers wait for it to go down.
func ExampleBarrier() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()

	gate, err := barrier.New(cli, "/example/barrier/migration", barrier.WithTTL(5*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gate.Close()
	fmt.Println("hold:", gate.Hold(ctx))

	waited := make(chan error)
	go func() {
		worker, _ := barrier.New(cli, "/example/barrier/migration")
		defer worker.Close()
		waited <- worker.Wait(ctx) // blocks until Release
	}()
	fmt.Println("release:", gate.Release(ctx))
	fmt.Println("worker went on:", <-waited)
	// Output:
	// hold: <nil>
	// release: <nil>
	// worker went on: <nil>
}

// Three workers start a phase together and finish it together: none gets past Enter
// before all three arrived, none past Leave before all three finished.
func ExampleDoubleBarrier() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()

	var mu sync.Mutex
	arrived, finished := 0, 0
	sawAll := true
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			b, err := barrier.NewDouble(cli, "/example/barrier/phase", 3, barrier.WithTTL(5*time.Second))
			if err != nil {
				fmt.Println(err)
				return
			}
			defer b.Close()
			mu.Lock()
			arrived++
			mu.Unlock()
			if err := b.Enter(ctx); err != nil {
				fmt.Println(err)
				return
			}
			mu.Lock()
			sawAll = sawAll && arrived == 3
			finished++
			mu.Unlock()
			if err := b.Leave(ctx); err != nil {
				fmt.Println(err)
				return
			}
			mu.Lock()
			sawAll = sawAll && finished == 3
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Println("every worker saw all three arrive and finish:", sawAll)
	// Output:
	// every worker saw all three arrive and finish: true
}
