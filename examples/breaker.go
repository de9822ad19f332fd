package main

import (
	"context"
	"errors"
	"time"

	"github.com/etcd-monitor/etcd-monitor/breaker"
)

func init() {
	register("breaker", "a circuit breaker tripped by one instance opens on the other; one probe closes it", runBreaker)
}

func runBreaker(ctx context.Context, e *env) error {
	prefix := "/examples/breaker/" + e.nodeID
	opts := []breaker.Option{breaker.WithFailureThreshold(3), breaker.WithCooldown(time.Second)}
	a, err := breaker.New(e.cli, prefix, opts...)
	if err != nil {
		return err
	}
	defer a.Close()
	other, err := e.newClient()
	if err != nil {
		return err
	}
	defer other.Close()
	b, err := breaker.New(other, prefix, opts...)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := a.Reset(ctx); err != nil {
		return err
	}

	down := errors.New("dependency down")
	for range 3 {
		_ = a.Do(ctx, func(context.Context) error { return down })
	}
	e.printf("instance A saw 3 failures: A is %v", a.State())
	if err := until(ctx, func() bool { return b.State() == breaker.Open }); err != nil {
		return err
	}
	e.printf("instance B, through the watch: %v; B's call: %v", b.State(), b.Do(ctx, func(context.Context) error { return nil }))

	if err := until(ctx, func() bool { return b.State() == breaker.HalfOpen }); err != nil {
		return err
	}
	e.printf("after the cool-down: %v", b.State())
	for {
		err := b.Do(ctx, func(context.Context) error { return nil })
		if err == nil {
			break
		}
		if !errors.Is(err, breaker.ErrOpen) {
			return err
		}
		if err := until(ctx, func() bool { return b.State() != breaker.Open }); err != nil {
			return err
		}
	}
	e.printf("B ran the one probe and it succeeded: B is %v", b.State())
	if err := until(ctx, func() bool { return a.State() == breaker.Closed }); err != nil {
		return err
	}
	e.printf("A is %v too", a.State())
	return nil
}

// until polls cond every 10ms until it holds or ctx ends.
func until(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
