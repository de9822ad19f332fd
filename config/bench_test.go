package config_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/config"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func benchStore(b *testing.B) *config.Store {
	ctx := etcdtest.Context(b, 30*time.Second)
	s, err := config.New(etcdtest.Client(b), etcdtest.Prefix(b))
	require.NoError(b, err)
	b.Cleanup(func() { s.Close() })
	require.NoError(b, s.WaitReady(ctx))
	require.NoError(b, s.Set(ctx, "pool/size", 10))
	require.NoError(b, s.Set(ctx, "name", "checkout"))
	require.NoError(b, s.Set(ctx, "timeout", "1.5s"))
	require.Eventually(b, func() bool { _, err := s.String("timeout"); return err == nil }, 2*time.Second, time.Millisecond)
	return s
}

func BenchmarkGetter(b *testing.B) {
	s := benchStore(b)
	b.Run("Int", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Int("pool/size"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("String", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.String("name"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Duration", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Duration("timeout"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkChangeToCallback measures from Set on another client to the Watch callback.
func BenchmarkChangeToCallback(b *testing.B) {
	ctx := etcdtest.Context(b, 5*time.Minute)
	p := etcdtest.Prefix(b)
	s, err := config.New(etcdtest.Client(b), p)
	require.NoError(b, err)
	defer s.Close()
	require.NoError(b, s.WaitReady(ctx))
	writer, err := config.New(etcdtest.Client(b), p)
	require.NoError(b, err)
	defer writer.Close()
	got := make(chan time.Time, 1)
	stop, err := s.Watch("k", func(config.Change) { got <- time.Now() })
	require.NoError(b, err)
	defer stop()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		if err := writer.Set(ctx, "k", i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkFlagEvaluate(b *testing.B) {
	ctx := etcdtest.Context(b, 30*time.Second)
	f, err := config.NewFlags(etcdtest.Client(b), etcdtest.Prefix(b))
	require.NoError(b, err)
	defer f.Close()
	require.NoError(b, f.Set(ctx, "rollout", config.RolloutFlag(30)))
	require.Eventually(b, func() bool { _, err := f.Flag("rollout"); return err == nil }, 2*time.Second, time.Millisecond)
	ec := config.EvalContext{TargetingKey: "user-42"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Evaluate("rollout", ec); err != nil {
			b.Fatal(err)
		}
	}
}
