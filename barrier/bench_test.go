package barrier_test

import (
	"context"
	"sync"
	"testing"

	"go.etcd.io/etcd/client/v3/concurrency"
	recipe "go.etcd.io/etcd/client/v3/experimental/recipes"

	"github.com/etcd-monitor/etcd-monitor/barrier"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// One op is a barrier raised, waited on by one waiter, and released.
func BenchmarkBarrier(b *testing.B) {
	cli := etcdtest.Client(b)
	ctx := context.Background()
	b.Run("ours", func(b *testing.B) {
		key := etcdtest.Prefix(b) + "gate"
		gate, err := barrier.New(cli, key)
		if err != nil {
			b.Fatal(err)
		}
		defer gate.Close()
		waiter, err := barrier.New(cli, key)
		if err != nil {
			b.Fatal(err)
		}
		defer waiter.Close()
		for b.Loop() {
			if err := gate.Hold(ctx); err != nil {
				b.Fatal(err)
			}
			done := make(chan error)
			go func() { done <- waiter.Wait(ctx) }()
			if err := gate.Release(ctx); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("recipes", func(b *testing.B) {
		key := etcdtest.Prefix(b) + "gate"
		gate := recipe.NewBarrier(cli, key)
		waiter := recipe.NewBarrier(cli, key)
		for b.Loop() {
			if err := gate.Hold(); err != nil {
				b.Fatal(err)
			}
			done := make(chan error)
			go func() { done <- waiter.Wait() }()
			if err := gate.Release(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	})
}

// One op is three participants entering and leaving a double barrier.
func BenchmarkDoubleBarrier(b *testing.B) {
	cli := etcdtest.Client(b)
	ctx := context.Background()
	const n = 3
	run := func(b *testing.B, enter, leave []func() error) {
		for b.Loop() {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if err := enter[i](); err != nil {
						b.Error(err)
						return
					}
					if err := leave[i](); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
	}
	b.Run("ours", func(b *testing.B) {
		key := etcdtest.Prefix(b) + "phase"
		var enter, leave []func() error
		for range n {
			d, err := barrier.NewDouble(cli, key, n)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			enter = append(enter, func() error { return d.Enter(ctx) })
			leave = append(leave, func() error { return d.Leave(ctx) })
		}
		run(b, enter, leave)
	})
	b.Run("recipes", func(b *testing.B) {
		key := etcdtest.Prefix(b) + "phase"
		var enter, leave []func() error
		for range n {
			s, err := concurrency.NewSession(cli)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			d := recipe.NewDoubleBarrier(s, key, n)
			enter = append(enter, d.Enter)
			leave = append(leave, d.Leave)
		}
		run(b, enter, leave)
	})
}
