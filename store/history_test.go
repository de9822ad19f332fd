package store_test

import (
	"context"
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// stepStartRef is StepStart in arbitrary precision: t's nanoseconds since the epoch,
// floored to a multiple of step.
func stepStartRef(t time.Time, step time.Duration) time.Time {
	ns := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(1e9))
	ns.Add(ns, big.NewInt(int64(t.Nanosecond())))
	st := big.NewInt(int64(step))
	r := new(big.Int).Mod(ns, st) // Euclidean: 0 <= r < step
	return t.Add(-time.Duration(r.Int64())).UTC()
}

// StepStart is exact for any time and step: times whose nanoseconds since the epoch do
// not fit in an int64 (before 1678, after 2262) and steps up to the longest Duration,
// where the sum of the nanoseconds and the step overflows.
func TestStepStartAnyTimeAnyStep(t *testing.T) {
	now := time.Now()
	times := []time.Time{now, time.Unix(0, 0), time.Unix(0, -1), time.Unix(0, 1), time.Unix(0, math.MaxInt64), time.Unix(0, math.MinInt64),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1600, 6, 1, 12, 0, 0, 7, time.UTC), time.Date(2560, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(2026, 3, 29, 2, 30, 0, 0, time.FixedZone("x", 3600))}
	steps := []time.Duration{1, time.Microsecond, time.Second, 7 * time.Minute, time.Hour, 24 * time.Hour, store.MaxHistoryStep,
		200 * 365 * 24 * time.Hour, 250 * 365 * 24 * time.Hour, 2562047 * time.Hour, math.MaxInt64 - 1, math.MaxInt64}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		times = append(times, time.Unix(rng.Int64N(1<<40)-1<<39, rng.Int64N(1e9)))
		steps = append(steps, time.Duration(rng.Int64N(math.MaxInt64)+1), time.Duration(rng.Int64N(int64(store.MaxHistoryStep))+1))
	}
	for _, at := range times {
		for _, step := range steps {
			got := store.StepStart(at, step)
			want := stepStartRef(at, step)
			if !got.Equal(want) || got.After(at) || !at.Before(got.Add(step)) {
				t.Fatalf("StepStart(%v, %v) = %v, want %v", at, step, got, want)
			}
			assert.Equal(t, time.UTC, got.Location())
		}
	}
	// The day of a time is the same whatever its monotonic reading or zone: a map key.
	day := store.StepStart(now, 24*time.Hour)
	assert.Equal(t, day, store.StepStart(now.Round(0).In(time.FixedZone("y", -7200)), 24*time.Hour))
	assert.True(t, store.StepStart(now, 0).Equal(now), "no step: t itself")
}

// Downsampled means and maxima are finite whatever the input: a sum of values near
// math.MaxFloat64 does not overflow, and non-finite values (DownsampleMetrics takes
// any input) are left out.
func TestDownsampleFinite(t *testing.T) {
	base := time.Unix(0, 0).UTC()
	in := []store.MetricSnapshot{
		{Time: base, Cluster: "c", Values: map[string]float64{"a": 1e308, "b": math.Inf(1), "c": math.NaN(), "d": 1}, Max: map[string]float64{"d": math.Inf(1)}},
		{Time: base.Add(time.Second), Cluster: "c", Values: map[string]float64{"a": 1e308, "b": 2, "d": 3}, Samples: 3},
		{Time: base.Add(2 * time.Second), Cluster: "c", Values: map[string]float64{"a": -1e308, "b": math.Inf(-1)}},
	}
	out := store.DownsampleMetrics(in, time.Minute)
	require.Len(t, out, 1)
	_, err := json.Marshal(out)
	require.NoError(t, err)
	assert.InEpsilon(t, 3e308/5, out[0].Values["a"], 1e-12, "weighted by Samples")
	assert.Equal(t, 2.0, out[0].Values["b"], "infinities left out")
	assert.NotContains(t, out[0].Values, "c", "NaN left out")
	assert.Equal(t, 2.5, out[0].Values["d"])
	assert.Equal(t, 3.0, out[0].Max["d"], "an infinite maximum left out")
	assert.Equal(t, 5, out[0].Samples)

	hs := store.DownsampleHealth([]store.HealthCheck{{Time: base, Cluster: "c", Values: map[string]float64{"x": math.MaxFloat64}},
		{Time: base, Cluster: "c", Values: map[string]float64{"x": math.MaxFloat64}}}, time.Hour)
	require.Len(t, hs, 1)
	assert.Equal(t, math.MaxFloat64, hs[0].Values["x"])
}

// A retention longer than the time since the epoch (no cutoff before 1970) keeps the
// history: the cutoff's key does not wrap to delete it all.
func TestHistoryRetentionPastEpoch(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.WithHistoryRetention(100*365*24*time.Hour))
	require.NoError(t, err)
	defer s.Close()
	store.SetSweepEvery(s, 0)
	now := time.Now()
	require.NoError(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: now.Add(-time.Hour), Cluster: "c"}}))
	require.NoError(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: now, Cluster: "c"}}))
	got, err := s.HealthChecks(ctx, store.HistoryQuery{})
	require.NoError(t, err)
	assert.Len(t, got, 2)
}

// Mean is the plain weighted mean to the bit for ordinary values, and finite, between
// the least and the greatest value, for values whose sum overflows.
func TestMean(t *testing.T) {
	var m store.Mean
	assert.Zero(t, m.Value(), "empty")
	m.Add(math.NaN(), 1)
	m.Add(math.Inf(1), 1)
	m.Add(5, 0)
	m.Add(5, math.NaN())
	assert.Zero(t, m.Value(), "nothing finite added")

	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		var m store.Mean
		sum, weight := 0.0, 0.0
		lo, hi := math.Inf(1), math.Inf(-1)
		for range 1 + rng.IntN(20) {
			v, w := rng.NormFloat64()*1e6, float64(1+rng.IntN(60))
			m.Add(v, w)
			sum += v * w
			weight += w
			lo, hi = min(lo, v), max(hi, v)
		}
		if got, want := m.Value(), min(max(sum/weight, lo), hi); got != want {
			t.Fatalf("mean %v, want %v", got, want)
		}
	}
	for range 1000 {
		var m store.Mean
		lo, hi := math.Inf(1), math.Inf(-1)
		for range 1 + rng.IntN(20) {
			v := (rng.Float64()*2 - 1) * math.MaxFloat64
			if rng.IntN(3) == 0 {
				v = math.Copysign(math.MaxFloat64, v)
			}
			m.Add(v, float64(1+rng.IntN(1000)))
			lo, hi = min(lo, v), max(hi, v)
		}
		if got := m.Value(); math.IsInf(got, 0) || math.IsNaN(got) || got < lo || got > hi {
			t.Fatalf("mean %v of values in [%v, %v]", got, lo, hi)
		}
	}
	var big store.Mean
	big.Add(math.MaxFloat64, 2)
	big.Add(math.MaxFloat64, 1)
	big.Add(-math.MaxFloat64, 1)
	assert.InEpsilon(t, math.MaxFloat64/2, big.Value(), 1e-12)
}
