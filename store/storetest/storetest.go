// Package storetest is the contract every store.Store implementation passes: the same
// tests run against the memory, bbolt and PostgreSQL stores.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// Opener returns an empty store for one test, and a function that closes it and opens
// the same state again (for a store without durable state, the same store). The
// opener registers any cleanup with t.
type Opener func(t *testing.T) (s store.Store, reopen func() store.Store)

// Base is a time within every implementation's raw retention, on an hour boundary, so
// steps of a minute or an hour split the test data deterministically.
func Base() time.Time { return time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour) }

// Capability names a case of the contract that runs only for the stores whose tests
// pass it to Run: a case added before every implementation passes it. Run skips such a
// case for a store that does not claim it, saying which capability is missing; once
// every store passes, the capability is claimed by all, or the case made unconditional.
type Capability string

// HugeValues: downsampled reads of finite values near ±math.MaxFloat64 return finite
// means (never ±Inf, which JSON cannot encode) between the least and greatest value.
// Stores that also roll up in SQL must keep the rollups finite too; the case reads raw
// records only.
const HugeValues Capability = "HugeValues"

// RecordTimeBound: a health check or metric snapshot with a time after
// store.MaxRecordTime is refused with store.ErrInvalidArgument, as the stores of package
// store refuse it.
const RecordTimeBound Capability = "RecordTimeBound"

// Run runs the history and maintenance contract against open, with the cases of the
// capabilities caps.
func Run(t *testing.T, open Opener, caps ...Capability) {
	claims := func(c Capability) func(*testing.T) {
		return func(t *testing.T) {
			if !slices.Contains(caps, c) {
				t.Skipf("the store does not claim storetest.%s", c)
			}
		}
	}
	t.Run("State", func(t *testing.T) { testState(t, open) })
	t.Run("History", func(t *testing.T) { testHistory(t, open) })
	t.Run("HistoryMembers", func(t *testing.T) { testHistoryMembers(t, open) })
	t.Run("HistoryInvalid", func(t *testing.T) { testHistoryInvalid(t, open) })
	t.Run("HistoryTimeBounds", func(t *testing.T) { testHistoryTimeBounds(t, open) })
	t.Run("HistoryHugeValues", func(t *testing.T) { claims(HugeValues)(t); testHistoryHugeValues(t, open) })
	t.Run("HistoryRecordTimeBound", func(t *testing.T) { claims(RecordTimeBound)(t); testHistoryRecordTimeBound(t, open) })
	t.Run("Maintenance", func(t *testing.T) { testMaintenance(t, open) })
	t.Run("AlertHistory", func(t *testing.T) { testAlertHistory(t, open) })
}

// testAlertHistory checks the transitions PutAlerts records in a store that is a
// store.AlertHistorian: firing once per firing, resolved when put resolved or deleted
// while firing, nothing for pending alerts or repeated writes; selected by cluster,
// time and limit, oldest first, and kept across a reopen.
func testAlertHistory(t *testing.T, open Opener) {
	s, reopen := open(t)
	if _, ok := s.(store.AlertHistorian); !ok {
		t.Skip("not a store.AlertHistorian")
	}
	c := ctx(t)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	al := func(fp, cluster, state string, fired time.Time) store.Alert {
		return store.Alert{Fingerprint: fp, Cluster: cluster, State: state, ActiveAt: base, FiredAt: fired,
			Data: json.RawMessage(fmt.Sprintf(`{"fp":%q,"state":%q}`, fp, state))}
	}
	require.NoError(t, s.PutAlerts(c, []store.Alert{al("a", "x", "pending", time.Time{}), al("b", "y", "pending", time.Time{})}, nil))
	require.NoError(t, s.PutAlerts(c, []store.Alert{al("a", "x", "firing", base.Add(time.Minute)), al("b", "y", "pending", time.Time{})}, nil))
	require.NoError(t, s.PutAlerts(c, []store.Alert{al("a", "x", "firing", base.Add(time.Minute))}, nil)) // again: no transition
	require.NoError(t, s.PutAlerts(c, []store.Alert{al("b", "y", "firing", base.Add(2*time.Minute))}, nil))
	require.NoError(t, s.PutAlerts(c, []store.Alert{al("a", "x", "resolved", base.Add(time.Minute))}, nil))
	require.NoError(t, s.PutAlerts(c, nil, []string{"a"}))      // its resolve was notified: no transition
	require.NoError(t, s.PutAlerts(c, nil, []string{"b", "z"})) // deleted while firing: resolved
	require.NoError(t, s.PutAlerts(c, []store.Alert{al("p", "x", "pending", time.Time{})}, nil))
	require.NoError(t, s.PutAlerts(c, nil, []string{"p"})) // pending, gone: nothing
	s = reopen()
	h := s.(store.AlertHistorian)

	all, err := h.AlertHistory(c, store.AlertHistoryQuery{})
	require.NoError(t, err)
	type tr struct{ fp, cluster, state string }
	var got []tr
	for i, a := range all {
		got = append(got, tr{a.Fingerprint, a.Cluster, a.State})
		if i > 0 {
			assert.Greater(t, a.ID, all[i-1].ID, "oldest first")
		}
	}
	require.Equal(t, []tr{{"a", "x", "firing"}, {"b", "y", "firing"}, {"a", "x", "resolved"}, {"b", "y", "resolved"}}, got)
	assert.True(t, all[0].Time.Equal(base.Add(time.Minute)), "firing at FiredAt: %v", all[0].Time)
	assert.JSONEq(t, `{"fp":"a","state":"firing"}`, string(all[0].Data))
	assert.JSONEq(t, `{"fp":"a","state":"resolved"}`, string(all[2].Data))
	assert.JSONEq(t, `{"fp":"b","state":"firing"}`, string(all[3].Data), "deleted while firing: the stored record")
	assert.WithinDuration(t, time.Now(), all[3].Time, time.Minute, "resolved at the write")

	x, err := h.AlertHistory(c, store.AlertHistoryQuery{Cluster: "x"})
	require.NoError(t, err)
	require.Len(t, x, 2)
	assert.Equal(t, "resolved", x[1].State)
	last, err := h.AlertHistory(c, store.AlertHistoryQuery{Limit: 1})
	require.NoError(t, err)
	require.Len(t, last, 1)
	assert.Equal(t, all[3].ID, last[0].ID, "the newest")
	since, err := h.AlertHistory(c, store.AlertHistoryQuery{Since: base.Add(90 * time.Second)})
	require.NoError(t, err)
	assert.Len(t, since, 3)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// testHistory writes an hour of health checks of two clusters every 10 s and reads them
// back raw, bounded, limited and downsampled.
func testHistory(t *testing.T, open Opener) {
	s, reopen := open(t)
	base := Base()
	var checks []store.HealthCheck
	for i := range 360 {
		at := base.Add(time.Duration(i) * 10 * time.Second)
		for _, c := range []string{"a", "b"} {
			checks = append(checks, store.HealthCheck{Time: at, Cluster: c, Healthy: i != 7, // unhealthy in minute 1
				Values: map[string]float64{"i": float64(i), "nan": math.NaN()}, Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
		}
	}
	require.NoError(t, s.PutHealthChecks(ctx(t), checks[:100]))
	require.NoError(t, s.PutHealthChecks(ctx(t), checks[100:]))
	require.NoError(t, s.PutHealthChecks(ctx(t), nil))
	// The same cluster and time replaces.
	require.NoError(t, s.PutHealthChecks(ctx(t), []store.HealthCheck{{Time: base, Cluster: "a", Healthy: true,
		Values: map[string]float64{"i": 0}, Data: json.RawMessage(`{"i":0,"again":true}`)}}))
	s = reopen()

	all, err := s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "a", Limit: 1000})
	require.NoError(t, err)
	require.Len(t, all, 360)
	for i, h := range all {
		assert.True(t, h.Time.Equal(base.Add(time.Duration(i)*10*time.Second)), "record %d at %v", i, h.Time)
		assert.Equal(t, "a", h.Cluster)
		assert.Equal(t, 1, h.Samples)
		assert.Equal(t, map[string]float64{"i": float64(i)}, h.Values, "NaN dropped")
		assert.Nil(t, h.Max)
	}
	assert.JSONEq(t, `{"i":0,"again":true}`, string(all[0].Data))
	assert.JSONEq(t, `{"i":5}`, string(all[5].Data))
	assert.False(t, all[7].Healthy)
	assert.True(t, all[8].Healthy)

	both, err := s.HealthChecks(ctx(t), store.HistoryQuery{Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, both, 720)

	// Since is inclusive, Until exclusive; Limit keeps the newest, oldest first.
	got, err := s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "b", Since: base.Add(time.Minute), Until: base.Add(2 * time.Minute)})
	require.NoError(t, err)
	require.Len(t, got, 6)
	assert.True(t, got[0].Time.Equal(base.Add(time.Minute)))
	assert.True(t, got[5].Time.Equal(base.Add(110*time.Second)))
	got, err = s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "b", Limit: 3})
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []float64{357, 358, 359}, []float64{got[0].Values["i"], got[1].Values["i"], got[2].Values["i"]})
	got, err = s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "b"})
	require.NoError(t, err)
	assert.Len(t, got, 100, "default limit")

	// One record per minute: means, maxima, the sample count, health of all of them.
	got, err = s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "a", Step: time.Minute})
	require.NoError(t, err)
	require.Len(t, got, 60)
	for m, h := range got {
		assert.True(t, h.Time.Equal(base.Add(time.Duration(m)*time.Minute)), "step %d at %v", m, h.Time)
		assert.Equal(t, 6, h.Samples)
		assert.InDelta(t, float64(6*m)+2.5, h.Values["i"], 1e-9)
		assert.InDelta(t, float64(6*m)+5, h.Max["i"], 1e-9)
		assert.Equal(t, m != 1, h.Healthy, "step %d", m)
	}
	// A step that does not start on the query's Since; the limit counts steps.
	got, err = s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "a", Since: base.Add(30 * time.Second), Until: base.Add(10 * time.Minute), Step: 5 * time.Minute, Limit: 1})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.True(t, got[0].Time.Equal(base.Add(5*time.Minute)))
	assert.Equal(t, 30, got[0].Samples)
	got, err = s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "a", Since: base.Add(30 * time.Second), Until: base.Add(10 * time.Minute), Step: 5 * time.Minute})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.True(t, got[0].Time.Equal(base))
	assert.Equal(t, 27, got[0].Samples, "the step holds only what the range holds")
	got, err = s.HealthChecks(ctx(t), store.HistoryQuery{Step: time.Hour})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, 360, got[0].Samples)
	assert.Equal(t, 360, got[1].Samples)
	assert.ElementsMatch(t, []string{"a", "b"}, []string{got[0].Cluster, got[1].Cluster})

	none, err := s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "nosuch"})
	require.NoError(t, err)
	assert.Empty(t, none)
}

// testHistoryMembers writes metric snapshots of a cluster and its members and selects
// by member.
func testHistoryMembers(t *testing.T, open Opener) {
	s, reopen := open(t)
	base := Base()
	var snaps []store.MetricSnapshot
	for i := range 12 {
		at := base.Add(time.Duration(i) * 10 * time.Second)
		for _, m := range []string{"", "m1", "m2"} {
			snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "c", Member: m,
				Values: map[string]float64{"v": float64(i), "m2only": map[bool]float64{true: 1}[m == "m2"]}})
		}
	}
	require.NoError(t, s.PutMetricSnapshots(ctx(t), snaps))
	s = reopen()
	all, err := s.MetricSnapshots(ctx(t), store.HistoryQuery{Cluster: "c", Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, all, 36)
	m1, err := s.MetricSnapshots(ctx(t), store.HistoryQuery{Cluster: "c", Member: "m1", Limit: 1000})
	require.NoError(t, err)
	require.Len(t, m1, 12)
	for _, r := range m1 {
		assert.Equal(t, "m1", r.Member)
	}
	steps, err := s.MetricSnapshots(ctx(t), store.HistoryQuery{Cluster: "c", Step: time.Minute})
	require.NoError(t, err)
	require.Len(t, steps, 6, "two minutes of three series")
	members := map[string]int{}
	for _, r := range steps {
		members[r.Member]++
		assert.Equal(t, 6, r.Samples)
	}
	assert.Equal(t, map[string]int{"": 2, "m1": 2, "m2": 2}, members)
	last, err := s.MetricSnapshots(ctx(t), store.HistoryQuery{Cluster: "c", Member: "m2", Step: time.Minute, Limit: 1})
	require.NoError(t, err)
	require.Len(t, last, 1)
	assert.True(t, last[0].Time.Equal(base.Add(time.Minute)))
	assert.InDelta(t, 8.5, last[0].Values["v"], 1e-9)
	assert.InDelta(t, 1, last[0].Values["m2only"], 1e-9)
}

func testHistoryInvalid(t *testing.T, open Opener) {
	s, _ := open(t)
	for name, h := range map[string]store.HealthCheck{
		"zero time":    {Cluster: "c"},
		"before epoch": {Time: time.Unix(-1, 0), Cluster: "c"},
		"no cluster":   {Time: Base()},
		"empty value":  {Time: Base(), Cluster: "c", Values: map[string]float64{"": 1}},
	} {
		assert.ErrorIs(t, s.PutHealthChecks(ctx(t), []store.HealthCheck{h}), store.ErrInvalidArgument, name)
	}
	assert.ErrorIs(t, s.PutMetricSnapshots(ctx(t), []store.MetricSnapshot{{Cluster: "c"}}), store.ErrInvalidArgument)
	for name, q := range map[string]store.HistoryQuery{
		"negative step":     {Step: -time.Second},
		"negative limit":    {Limit: -1},
		"empty range":       {Since: Base(), Until: Base()},
		"step over a year":  {Step: store.MaxHistoryStep + time.Second},
		"step of centuries": {Step: math.MaxInt64},
	} {
		_, err := s.HealthChecks(ctx(t), q)
		assert.ErrorIs(t, err, store.ErrInvalidArgument, name)
		_, err = s.MetricSnapshots(ctx(t), q)
		assert.ErrorIs(t, err, store.ErrInvalidArgument, name)
	}
	// A batch with one bad record writes nothing.
	err := s.PutHealthChecks(ctx(t), []store.HealthCheck{{Time: Base(), Cluster: "c"}, {Time: Base()}})
	assert.ErrorIs(t, err, store.ErrInvalidArgument)
	got, err := s.HealthChecks(ctx(t), store.HistoryQuery{})
	require.NoError(t, err)
	assert.Empty(t, got)
}

// testHistoryTimeBounds reads with bounds outside the times records can have (the
// epoch to store.MaxRecordTime), which bound nothing beyond them, and with the longest
// step; it reads back a record at the latest time a record can have.
func testHistoryTimeBounds(t *testing.T, open Opener) {
	s, reopen := open(t)
	base := Base()
	var checks []store.HealthCheck
	var snaps []store.MetricSnapshot
	for i := range 6 {
		at := base.Add(time.Duration(i) * 10 * time.Second)
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "c", Healthy: true, Values: map[string]float64{"i": float64(i)}})
		snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "c", Member: "m", Values: map[string]float64{"i": float64(i)}})
	}
	require.NoError(t, s.PutHealthChecks(ctx(t), checks))
	require.NoError(t, s.PutMetricSnapshots(ctx(t), snaps))
	// A record at the latest time a record can have.
	late := store.MaxRecordTime.Truncate(time.Second)
	require.NoError(t, s.PutHealthChecks(ctx(t), []store.HealthCheck{{Time: late, Cluster: "late", Healthy: true}}))
	s = reopen()
	year := func(y int) time.Time { return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name         string
		since, until time.Time
		want         int
	}{
		{"until 2200", time.Time{}, year(2200), 6},
		{"until 2262", time.Time{}, year(2262), 6},
		{"until after MaxRecordTime", time.Time{}, store.MaxRecordTime.Add(time.Nanosecond), 6},
		{"until 2263", time.Time{}, year(2263), 6},
		{"until 2560", time.Time{}, year(2560), 6},
		{"until 9999", time.Time{}, year(9999), 6},
		{"since 1000 until 2560", year(1000), year(2560), 6},
		{"since 1", year(1), time.Time{}, 6},
		{"since 1960", year(1960), time.Time{}, 6},
		{"until 1960", time.Time{}, year(1960), 0},
		{"since 1000 until 1960", year(1000), year(1960), 0},
		{"since 2300", year(2300), time.Time{}, 0},
		{"since 2560 until 9999", year(2560), year(9999), 0},
	} {
		for _, step := range []time.Duration{0, time.Minute} {
			q := store.HistoryQuery{Cluster: "c", Since: tc.since, Until: tc.until, Step: step}
			hs, err := s.HealthChecks(ctx(t), q)
			require.NoError(t, err, "%s step %v", tc.name, step)
			ms, err := s.MetricSnapshots(ctx(t), q)
			require.NoError(t, err, "%s step %v", tc.name, step)
			want := tc.want
			if step > 0 {
				want = min(want, 1)
			}
			assert.Len(t, hs, want, "health checks, %s, step %v", tc.name, step)
			assert.Len(t, ms, want, "metric snapshots, %s, step %v", tc.name, step)
			if step > 0 && want == 1 && len(hs) == 1 && len(ms) == 1 {
				assert.True(t, hs[0].Time.Equal(base), "%s: step at %v", tc.name, hs[0].Time)
				assert.Equal(t, 6, hs[0].Samples, tc.name)
				assert.Equal(t, 6, ms[0].Samples, tc.name)
			}
		}
	}

	// The longest step: one record, at the start of its step since the epoch.
	hs, err := s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "c", Step: store.MaxHistoryStep})
	require.NoError(t, err)
	require.Len(t, hs, 1)
	assert.True(t, hs[0].Time.Equal(store.StepStart(base, store.MaxHistoryStep)), "step at %v", hs[0].Time)
	assert.False(t, hs[0].Time.After(base), "a step starts before its records: %v", hs[0].Time)
	assert.Equal(t, 6, hs[0].Samples)
	assert.InDelta(t, 2.5, hs[0].Values["i"], 1e-9)

	for _, q := range []store.HistoryQuery{{Cluster: "late"}, {Cluster: "late", Since: year(2262)}, {Cluster: "late", Until: year(9999)},
		{Cluster: "late", Step: time.Hour}} {
		hs, err = s.HealthChecks(ctx(t), q)
		require.NoError(t, err)
		require.Len(t, hs, 1, "%+v", q)
		assert.True(t, hs[0].Time.Equal(store.StepStart(late, q.Step)), "%+v: at %v", q, hs[0].Time)
	}
}

// testHistoryRecordTimeBound writes records after store.MaxRecordTime, which are
// refused, and one at it, which is not.
func testHistoryRecordTimeBound(t *testing.T, open Opener) {
	s, reopen := open(t)
	for _, at := range []time.Time{store.MaxRecordTime.Add(time.Microsecond), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		assert.ErrorIs(t, s.PutHealthChecks(ctx(t), []store.HealthCheck{{Time: Base(), Cluster: "c"}, {Time: at, Cluster: "c"}}),
			store.ErrInvalidArgument, "health check at %v", at)
		assert.ErrorIs(t, s.PutMetricSnapshots(ctx(t), []store.MetricSnapshot{{Time: at, Cluster: "c"}}),
			store.ErrInvalidArgument, "metric snapshot at %v", at)
	}
	late := store.MaxRecordTime.Truncate(time.Microsecond)
	require.NoError(t, s.PutMetricSnapshots(ctx(t), []store.MetricSnapshot{{Time: late, Cluster: "c"}}))
	s = reopen()
	hs, err := s.HealthChecks(ctx(t), store.HistoryQuery{})
	require.NoError(t, err)
	assert.Empty(t, hs, "a batch with a refused record writes nothing")
	ms, err := s.MetricSnapshots(ctx(t), store.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.True(t, ms[0].Time.Equal(late), "at %v", ms[0].Time)
}

// testHistoryHugeValues downsamples finite values near ±math.MaxFloat64, whose plain
// sums overflow: the means are finite, between the least and the greatest value, and
// the records encode as JSON.
func testHistoryHugeValues(t *testing.T, open Opener) {
	s, reopen := open(t)
	base := Base()
	const big = math.MaxFloat64
	series := map[string][]float64{
		"max":   {big, big, big, big, big, big},
		"1e308": {1e308, 1e308, 1e308, 1e308, 1e308, 1e308},
		"min":   {-big, -big, -big, -big, -big, -big},
		"mixed": {big, big, -big, big, big, -big},
		"ramp":  {1e308, 1.2e308, 1.4e308, 1.6e308, 1.7e308, 1.1e308},
		"small": {1, 2, 3, 4, 5, 6},
	}
	want := map[string]float64{"max": big, "1e308": 1e308, "min": -big, "mixed": big / 3, "ramp": 8e308 / 6, "small": 3.5}
	var checks []store.HealthCheck
	var snaps []store.MetricSnapshot
	for i := range 6 {
		at := base.Add(time.Duration(i) * 10 * time.Second)
		vals := map[string]float64{}
		for name, vs := range series {
			vals[name] = vs[i]
		}
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "c", Healthy: true, Values: vals})
		snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "c", Values: vals})
	}
	require.NoError(t, s.PutHealthChecks(ctx(t), checks))
	require.NoError(t, s.PutMetricSnapshots(ctx(t), snaps))
	s = reopen()

	raw, err := s.MetricSnapshots(ctx(t), store.HistoryQuery{Cluster: "c"})
	require.NoError(t, err)
	require.Len(t, raw, 6)
	assert.Equal(t, big, raw[0].Values["max"], "kept as written")

	check := func(what string, values, maxes map[string]float64, samples int, encoded error) {
		t.Helper()
		assert.NoError(t, encoded, "%s: encodes as JSON", what)
		assert.Equal(t, 6, samples, what)
		for name, w := range want {
			v, ok := values[name]
			if !assert.True(t, ok, "%s: %s missing", what, name) {
				continue
			}
			assert.False(t, math.IsInf(v, 0) || math.IsNaN(v), "%s: %s mean %v", what, name, v)
			assert.InEpsilon(t, w, v, 1e-9, "%s: %s mean", what, name)
			assert.LessOrEqual(t, v, slices.Max(series[name]), "%s: %s mean", what, name)
			assert.GreaterOrEqual(t, v, slices.Min(series[name]), "%s: %s mean", what, name)
			assert.Equal(t, slices.Max(series[name]), maxes[name], "%s: %s max", what, name)
		}
	}
	for _, step := range []time.Duration{time.Minute, time.Hour} {
		hs, err := s.HealthChecks(ctx(t), store.HistoryQuery{Cluster: "c", Step: step})
		require.NoError(t, err)
		require.Len(t, hs, 1)
		_, jerr := json.Marshal(hs)
		check(fmt.Sprintf("health checks, step %v", step), hs[0].Values, hs[0].Max, hs[0].Samples, jerr)
		ms, err := s.MetricSnapshots(ctx(t), store.HistoryQuery{Cluster: "c", Step: step})
		require.NoError(t, err)
		require.Len(t, ms, 1)
		_, jerr = json.Marshal(ms)
		check(fmt.Sprintf("metric snapshots, step %v", step), ms[0].Values, ms[0].Max, ms[0].Samples, jerr)
	}
}

func testMaintenance(t *testing.T, open Opener) {
	s, reopen := open(t)
	base := Base()
	for i := range 5 {
		require.NoError(t, s.PutMaintenanceOp(ctx(t), store.MaintenanceOp{ID: fmt.Sprintf("op%d", i), Cluster: []string{"a", "b"}[i%2],
			Kind: "defragment", State: "running", Started: base.Add(time.Duration(i) * time.Minute)}))
	}
	require.NoError(t, s.PutMaintenanceOp(ctx(t), store.MaintenanceOp{ID: "op2", Cluster: "a", Kind: "defragment", State: "succeeded",
		Started: base.Add(2 * time.Minute), Finished: base.Add(3 * time.Minute), Alert: "fp1", DryRun: true, Data: json.RawMessage(`{"members":3}`)}))
	assert.ErrorIs(t, s.PutMaintenanceOp(ctx(t), store.MaintenanceOp{}), store.ErrInvalidArgument)
	_, err := s.MaintenanceOps(ctx(t), store.MaintenanceQuery{Limit: -1})
	assert.ErrorIs(t, err, store.ErrInvalidArgument)
	s = reopen()

	all, err := s.MaintenanceOps(ctx(t), store.MaintenanceQuery{})
	require.NoError(t, err)
	require.Len(t, all, 5)
	assert.Equal(t, "op4", all[0].ID, "newest first")
	a, err := s.MaintenanceOps(ctx(t), store.MaintenanceQuery{Cluster: "a", Limit: 2})
	require.NoError(t, err)
	require.Len(t, a, 2)
	assert.Equal(t, []string{"op4", "op2"}, []string{a[0].ID, a[1].ID})
	op := a[1]
	assert.Equal(t, "succeeded", op.State)
	assert.True(t, op.Finished.Equal(base.Add(3*time.Minute)))
	assert.True(t, op.Started.Equal(base.Add(2*time.Minute)))
	assert.Equal(t, "fp1", op.Alert)
	assert.True(t, op.DryRun)
	assert.JSONEq(t, `{"members":3}`, string(op.Data))
}

// testState writes alert state, the notification log, silences and benchmarks, and
// reads them back after a reopen.
func testState(t *testing.T, open Opener) {
	ctx := ctx(t)
	s, reopen := open(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.PutAlerts(ctx, []store.Alert{
		{Fingerprint: "a", Cluster: "prod", State: "firing", ActiveAt: at, FiredAt: at.Add(time.Minute), Data: json.RawMessage(`{"x":1}`)},
		{Fingerprint: "b", State: "pending", ActiveAt: at},
	}, nil))
	require.NoError(t, s.PutAlerts(ctx, nil, []string{"b"}))
	assert.ErrorIs(t, s.PutAlerts(ctx, []store.Alert{{}}, nil), store.ErrInvalidArgument)
	require.NoError(t, s.PutGroup(ctx, store.Group{Receiver: "pd", GroupKey: "k1", SentAt: at, Firing: []string{"a"}}))
	require.NoError(t, s.PutGroup(ctx, store.Group{Receiver: "pd", GroupKey: "k2", SentAt: at}))
	require.NoError(t, s.DeleteGroup(ctx, "pd", "k2"))
	for i := range 5 {
		n, err := s.AppendNotification(ctx, store.Notification{Time: at.Add(time.Duration(i) * time.Second), Receiver: []string{"pd", "slack"}[i%2], Attempt: 1, Status: "sent"})
		require.NoError(t, err)
		assert.Equal(t, uint64(i+1), n.ID)
	}
	require.NoError(t, s.PutSilence(ctx, store.Silence{ID: "s1", Matchers: []store.Matcher{{Name: "alertname", Value: "X", IsEqual: true}}, EndsAt: at.Add(time.Hour)}))
	require.NoError(t, s.PutSilence(ctx, store.Silence{ID: "s2"}))
	require.NoError(t, s.DeleteSilence(ctx, "s2"))
	assert.ErrorIs(t, s.DeleteSilence(ctx, "s2"), store.ErrNotFound)
	require.NoError(t, s.PutBenchmark(ctx, store.Benchmark{ID: "b1", Time: at, Cluster: "prod", Data: json.RawMessage(`{"ops":1}`)}))
	require.NoError(t, s.PutBenchmark(ctx, store.Benchmark{ID: "b2", Time: at.Add(time.Hour), Cluster: "lab"}))

	s = reopen()
	alerts, err := s.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	assert.Equal(t, "a", alerts[0].Fingerprint)
	assert.True(t, alerts[0].FiredAt.Equal(at.Add(time.Minute)))
	assert.JSONEq(t, `{"x":1}`, string(alerts[0].Data))
	groups, err := s.Groups(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 1)
	assert.Equal(t, []string{"a"}, groups[0].Firing)
	ns, err := s.Notifications(ctx, store.NotificationQuery{Receiver: "pd", Limit: 2})
	require.NoError(t, err)
	require.Len(t, ns, 2)
	assert.Equal(t, uint64(5), ns[0].ID, "newest first")
	assert.Equal(t, uint64(3), ns[1].ID)
	sils, err := s.Silences(ctx)
	require.NoError(t, err)
	require.Len(t, sils, 1)
	assert.Equal(t, "X", sils[0].Matchers[0].Value)
	bs, err := s.Benchmarks(ctx, store.BenchmarkQuery{})
	require.NoError(t, err)
	require.Len(t, bs, 2)
	assert.Equal(t, "b2", bs[0].ID, "newest first")
	bs, err = s.Benchmarks(ctx, store.BenchmarkQuery{Cluster: "prod"})
	require.NoError(t, err)
	require.Len(t, bs, 1)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "idempotent")
	_, err = s.Alerts(ctx)
	assert.ErrorIs(t, err, store.ErrClosed)
}
