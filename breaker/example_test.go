package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/etcd-monitor/etcd-monitor/breaker"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// Two instances of a service share a breaker around a flaky dependency: the failures one
// instance sees open it for the other too.
func ExampleBreaker() {
	ctx := context.Background()
	var instances []*breaker.Breaker
	for range 2 {
		cli, err := etcdtest.NewClient()
		if err != nil {
			fmt.Println(err)
			return
		}
		defer cli.Close()
		b, err := breaker.New(cli, "/example/breaker/payments", breaker.WithFailureThreshold(2), breaker.WithCooldown(10*time.Second))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer b.Close()
		instances = append(instances, b)
	}
	a, b := instances[0], instances[1]
	// Start closed, whatever an earlier run left; a Reset also puts each instance on the
	// shared state at once (a new instance is on its local state until its watch has
	// listed the keys, and failures it sees meanwhile open it only there).
	for _, in := range instances {
		_ = in.Reset(ctx)
	}

	down := errors.New("payments: 503")
	for range 2 {
		fmt.Println("a:", a.Do(ctx, func(context.Context) error { return down }))
	}
	for end := time.Now().Add(10 * time.Second); b.State() != breaker.Open && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond) // the watch brings the news
	}
	fmt.Println("b sees:", b.State())
	fmt.Println("b:", b.Do(ctx, func(context.Context) error { return nil }))
	// Output:
	// a: payments: 503
	// a: payments: 503
	// b sees: open
	// b: breaker: open
}
