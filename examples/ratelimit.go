package main

import (
	"context"
	"time"

	"github.com/etcd-monitor/etcd-monitor/ratelimit"
)

func init() {
	register("ratelimit", "three instances share a limit of 50/s for two seconds", runRateLimit)
}

func runRateLimit(ctx context.Context, e *env) error {
	key := "/examples/ratelimit/" + e.nodeID
	const limit = 50
	var ls []*ratelimit.Limiter
	for range 3 {
		l, err := ratelimit.New(e.cli, key, limit, time.Second)
		if err != nil {
			return err
		}
		defer l.Close()
		ls = append(ls, l)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	counts := make([]int, len(ls))
	done := make(chan struct{})
	for i, l := range ls {
		go func() {
			defer func() { done <- struct{}{} }()
			for l.Wait(rctx) == nil {
				counts[i]++
			}
		}()
	}
	for range ls {
		<-done
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	total := counts[0] + counts[1] + counts[2]
	e.printf("admitted %v = %d in 2s, each instance asking without pause", counts, total)
	e.printf("bound: %d·2 + burst %d + 3 instances × batch %d = %d", limit, limit, max(1, limit/20), 2*limit+limit+3*max(1, limit/20))
	return nil
}
