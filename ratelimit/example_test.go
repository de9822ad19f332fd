package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/ratelimit"
)

// Two instances of a service share a limit of 10 calls a minute: whatever one spends,
// the other cannot.
func ExampleLimiter() {
	ctx := context.Background()
	var ls []*ratelimit.Limiter
	for range 2 {
		cli, err := etcdtest.NewClient()
		if err != nil {
			fmt.Println(err)
			return
		}
		defer cli.Close()
		l, err := ratelimit.New(cli, "/example/ratelimit/partner-api", 10, time.Minute, ratelimit.WithBatch(3))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer l.Close()
		ls = append(ls, l)
	}
	admitted := map[int]int{}
	for range 10 {
		for i, l := range ls {
			if ok, err := l.Allow(ctx); err == nil && ok {
				admitted[i]++
			}
		}
	}
	fmt.Println("admitted:", admitted[0]+admitted[1], "of 20 asked")
	fmt.Println("held locally, given back at Close:", ls[0].Tokens()+ls[1].Tokens())
	// Output:
	// admitted: 10 of 20 asked
	// held locally, given back at Close: 0
}
