package postgres_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

func count(t *testing.T, s *postgres.Store, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.Pool().QueryRow(ctxT(t), sql, args...).Scan(&n))
	return n
}

// Five hours of checks every 10 s: the job rolls them up into minutes and hours,
// applies the retention (raw 1h, minutes 2h, hours 4h) at a chosen now, and queries
// read each part of the range from the table that still has it, never counting a
// sample twice.
func TestRollupAndRetention(t *testing.T) {
	base := hoursAgo(t, 5)
	s := open(t, schema(t), postgres.WithRetention(postgres.Retention{Raw: time.Hour, Minute: 2 * time.Hour, Hour: 4 * time.Hour}))
	ctx := ctxT(t)
	var checks []store.HealthCheck
	var snaps []store.MetricSnapshot
	for i := range 1800 {
		at := base.Add(time.Duration(i) * 10 * time.Second)
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "a", Healthy: i != 400,
			Values: map[string]float64{"i": float64(i)}})
		snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "a", Member: "m1", Values: map[string]float64{"i": float64(i)}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
	require.NoError(t, s.Flush(ctx))
	assert.Equal(t, uint64(3600), s.Stats().Written)

	// Before any rollup, a step query is answered from raw data.
	hours, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Hour})
	require.NoError(t, err)
	require.Len(t, hours, 5)

	now := base.Add(5*time.Hour + 30*time.Second)
	require.NoError(t, s.Maintain(ctx, now))
	require.NoError(t, s.Maintain(ctx, now), "idempotent")

	// Raw: kept from now-1h; minutes from now-2h (the hour rollup has them); hours from now-4h.
	assert.Equal(t, 357, count(t, s, `SELECT count(*) FROM health_raw`))
	assert.Equal(t, 357, count(t, s, `SELECT count(*) FROM metrics_raw`))
	assert.Equal(t, 119, count(t, s, `SELECT count(*) FROM health_1m`))
	assert.Equal(t, 119, count(t, s, `SELECT count(*) FROM metrics_1m`))
	assert.Equal(t, 3, count(t, s, `SELECT count(*) FROM health_1h`))
	assert.Equal(t, 3, count(t, s, `SELECT count(*) FROM metrics_1h`))

	// Hours 2-4 from the hour rollup: means and maxima of 360 samples each.
	hours, err = s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Hour})
	require.NoError(t, err)
	require.Len(t, hours, 3)
	for j, h := range hours {
		hr := j + 2
		assert.True(t, h.Time.Equal(base.Add(time.Duration(hr)*time.Hour)), "hour %d at %v", hr, h.Time)
		assert.Equal(t, 360, h.Samples)
		assert.InDelta(t, float64(360*hr)+179.5, h.Values["i"], 1e-6)
		assert.InDelta(t, float64(360*hr)+359, h.Max["i"], 1e-6)
		assert.True(t, h.Healthy)
		assert.Nil(t, h.Data)
	}
	// Minutes: hour 3 from the hour rollup (its minutes are partly gone), hour 4 minute by minute.
	mins, err := s.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "a", Member: "m1", Step: time.Minute,
		Since: base.Add(3 * time.Hour), Limit: 1000})
	require.NoError(t, err)
	require.Len(t, mins, 61)
	assert.True(t, mins[0].Time.Equal(base.Add(3*time.Hour)))
	assert.Equal(t, 360, mins[0].Samples)
	total := 0
	for _, m := range mins {
		total += m.Samples
	}
	assert.Equal(t, 720, total, "every sample once")
	assert.InDelta(t, float64(1440+6*59)+2.5, mins[60].Values["i"], 1e-6)
	// Raw records: the finest kept for the range, newest first within the limit.
	raw, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Limit: 2})
	require.NoError(t, err)
	require.Len(t, raw, 2)
	assert.InDelta(t, 1799, raw[1].Values["i"], 0)
	assert.Equal(t, 1, raw[1].Samples)
	// An unhealthy check makes its minute and hour unhealthy; its raw record is gone.
	early, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Until: base.Add(2 * time.Hour), Step: time.Hour})
	require.NoError(t, err)
	assert.Empty(t, early, "hours 0 and 1 are past every retention")
}

// History written after its steps were rolled up (late, after an outage) makes the job
// roll those steps up again.
func TestLateHistoryRolledUpAgain(t *testing.T) {
	base := hoursAgo(t, 2)
	s := open(t, schema(t))
	ctx := ctxT(t)
	put := func(at time.Time, v float64, healthy bool) {
		require.NoError(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: at, Cluster: "a", Healthy: healthy, Values: map[string]float64{"v": v}}}))
		require.NoError(t, s.Flush(ctx))
	}
	put(base.Add(10*time.Second), 1, true)
	put(base.Add(90*time.Minute), 1, true)
	require.NoError(t, s.Maintain(ctx, base.Add(91*time.Minute)))
	put(base.Add(20*time.Second), 3, false) // late: its minute and hour were rolled up

	require.NoError(t, s.Maintain(ctx, base.Add(91*time.Minute)))
	hours, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Hour, Until: base.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, hours, 1)
	assert.Equal(t, 2, hours[0].Samples)
	assert.InDelta(t, 2, hours[0].Values["v"], 1e-9)
	assert.InDelta(t, 3, hours[0].Max["v"], 1e-9)
	assert.False(t, hours[0].Healthy)
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM health_1h`))
	assert.Equal(t, 2, count(t, s, `SELECT count(*) FROM health_1m`))
}

// The notification log is bounded by the job.
func TestNotificationLogBounded(t *testing.T) {
	s := open(t, schema(t), postgres.WithMaxNotifications(3))
	ctx := ctxT(t)
	for range 10 {
		_, err := s.AppendNotification(ctx, store.Notification{Receiver: "r", Time: time.Now()})
		require.NoError(t, err)
	}
	require.NoError(t, s.Maintain(ctx, time.Now()))
	ns, err := s.Notifications(ctx, store.NotificationQuery{})
	require.NoError(t, err)
	require.Len(t, ns, 3)
	assert.Equal(t, []uint64{10, 9, 8}, []uint64{ns[0].ID, ns[1].ID, ns[2].ID})
}

// History older than the raw retention is dropped and counted, not written: its steps
// were rolled up and the raw data around it deleted, so rolling them up again from raw
// would replace what the rollups kept with the one late record.
func TestHistoryOlderThanRawRetentionDropped(t *testing.T) {
	base := hoursAgo(t, 5)
	s := open(t, schema(t), postgres.WithRetention(postgres.Retention{Raw: time.Hour, Minute: 2 * time.Hour, Hour: 4 * time.Hour}))
	ctx := ctxT(t)
	var checks []store.HealthCheck
	for i := range 1800 {
		checks = append(checks, store.HealthCheck{Time: base.Add(time.Duration(i) * 10 * time.Second), Cluster: "a", Healthy: true,
			Values: map[string]float64{"i": float64(i)}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	now := base.Add(5*time.Hour + 30*time.Second)
	require.NoError(t, s.Maintain(ctx, now))
	require.Equal(t, 119, count(t, s, `SELECT count(*) FROM health_1m`))

	// Inside the minute retention, before the raw cut.
	require.NoError(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: base.Add(3*time.Hour + 5*time.Minute + time.Second), Cluster: "a",
		Healthy: true, Values: map[string]float64{"i": 1}}}))
	require.NoError(t, s.Flush(ctx))
	require.NoError(t, s.Maintain(ctx, now))
	assert.Equal(t, 119, count(t, s, `SELECT count(*) FROM health_1m`), "minute rollups kept")
	assert.Equal(t, 360, count(t, s, `SELECT samples FROM health_1h WHERE time = $1`, base.Add(3*time.Hour)), "hour 3 kept")
	st := s.Stats()
	assert.Equal(t, uint64(1800), st.Written)
	assert.Equal(t, uint64(1), st.Dropped)
}

// PostgreSQL bins by whole microseconds: a finer step is the caller's invalid
// argument, not a store failure.
func TestHistoryStepUnderAMicrosecond(t *testing.T) {
	s := open(t, schema(t))
	ctx := ctxT(t)
	require.NoError(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: time.Now().Add(-time.Minute), Cluster: "a", Healthy: true,
		Values: map[string]float64{"v": 1}}}))
	require.NoError(t, s.Flush(ctx))
	for _, step := range []time.Duration{time.Nanosecond, 1500 * time.Nanosecond} {
		_, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: step})
		assert.ErrorIs(t, err, store.ErrInvalidArgument, step)
		_, err = s.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "a", Step: step})
		assert.ErrorIs(t, err, store.ErrInvalidArgument, step)
	}
	assert.Zero(t, s.Stats().Errors)
	got, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Microsecond})
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

// A step query whose first window finds fewer steps than its limit (a step shorter
// than the records' interval) widens the window as far as the limit needs, rather
// than reading the whole range: two hours of checks every 10 s, 10 steps of 1 s.
func TestHistoryStepQueryReadsBounded(t *testing.T) {
	s := open(t, schema(t))
	ctx := ctxT(t)
	end := time.Now().UTC().Truncate(time.Second)
	var checks []store.HealthCheck
	for i := range 720 {
		checks = append(checks, store.HealthCheck{Time: end.Add(-time.Duration(i) * 10 * time.Second), Cluster: "a", Healthy: true,
			Values: map[string]float64{"i": float64(i)}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	before := postgres.RowsRead(s)
	got, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Second, Until: end.Add(time.Second), Limit: 10})
	require.NoError(t, err)
	require.Len(t, got, 10)
	assert.True(t, got[9].Time.Equal(end), "the newest last: %v", got[9].Time)
	assert.True(t, got[0].Time.Equal(end.Add(-90*time.Second)), "the tenth newest first: %v", got[0].Time)
	// Windows of 10, 20, 40, 80 and 160 s: at most 31 rows, not 720.
	assert.LessOrEqual(t, postgres.RowsRead(s)-before, uint64(40))
}

// Rollups, retention and the staleness of late history go by PostgreSQL's clock, not
// the daemon's: a replica whose clock runs three hours ahead neither rolls up steps
// that are not complete yet nor deletes raw history the others still keep, and its
// fresh records are not taken for stale ones.
func TestMaintainUsesPostgresClock(t *testing.T) {
	s := open(t, schema(t), postgres.WithRetention(postgres.Retention{Raw: time.Hour, Minute: 2 * time.Hour, Hour: 4 * time.Hour}),
		postgres.WithJobInterval(50*time.Millisecond))
	postgres.SetDaemonClock(s, func() time.Time { return time.Now().Add(3 * time.Hour) })
	ctx := ctxT(t)
	var server time.Time
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&server))
	var checks []store.HealthCheck
	for i := range 180 {
		checks = append(checks, store.HealthCheck{Time: server.Add(-time.Duration(i+1) * 10 * time.Second), Cluster: "a", Healthy: true,
			Values: map[string]float64{"i": float64(i)}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	runs := postgres.JobRuns(s)
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.GreaterOrEqual(c, postgres.JobRuns(s), runs+2) }, 10*time.Second, 20*time.Millisecond,
		"the job ran twice since the records were written")
	var done *time.Time
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT done_until FROM rollup_state WHERE name = 'health_1m'`).Scan(&done))
	var serverNow time.Time
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&serverNow))
	require.NotNil(t, done, "rolled up")
	assert.False(t, done.After(serverNow), "rolled up to %v, past PostgreSQL's now %v: incomplete steps", *done, serverNow)
	assert.Equal(t, 180, count(t, s, `SELECT count(*) FROM health_raw`), "raw history inside the retention kept")
	assert.GreaterOrEqual(t, count(t, s, `SELECT count(*) FROM health_1m`), 28, "the complete minutes rolled up")

	// A fresh record from the skewed daemon, in a minute already rolled up, is written.
	require.NoError(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: server.Add(-15 * time.Minute).Add(time.Second), Cluster: "a", Healthy: false}}))
	require.NoError(t, s.Flush(ctx))
	assert.Zero(t, s.Stats().Dropped)
	assert.Equal(t, 181, count(t, s, `SELECT count(*) FROM health_raw`))
}

// rowsScanned sums the rows the plan's scans of table ("": of any table) produced.
func rowsScanned(t *testing.T, plan []byte, table string) float64 {
	t.Helper()
	var doc []struct{ Plan map[string]any }
	require.NoError(t, json.Unmarshal(plan, &doc))
	var walk func(n map[string]any) float64
	walk = func(n map[string]any) float64 {
		sum := 0.0
		if name, ok := n["Relation Name"]; ok && (table == "" || name == table) && n["Actual Rows"] != nil {
			sum += n["Actual Rows"].(float64) * n["Actual Loops"].(float64)
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				sum += walk(k.(map[string]any))
			}
		}
		return sum
	}
	require.Len(t, doc, 1)
	return walk(doc[0].Plan)
}

// The newest records of a cluster (no step) are read backwards on the primary key of
// each table, not by reading every raw row of the day and sorting: 2,000 metric
// records, the newest 60 read. Autovacuum does not analyze the tables (seconds old
// here; off in this test): Maintain gathers the statistics the plan needs.
func TestHistoryNewestReadsOnlyThem(t *testing.T) {
	s := open(t, schema(t))
	ctx := ctxT(t)
	for _, tb := range []string{"health_raw", "health_1m", "health_1h", "metrics_raw", "metrics_1m", "metrics_1h"} {
		_, err := s.Pool().Exec(ctx, "ALTER TABLE "+tb+" SET (autovacuum_enabled = false)")
		require.NoError(t, err)
	}
	end := time.Now().UTC().Truncate(time.Second)
	var snaps []store.MetricSnapshot
	var checks []store.HealthCheck
	for i := range 2000 {
		at := end.Add(-time.Duration(i) * 10 * time.Second)
		snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "a", Member: "m", Values: map[string]float64{"i": float64(i)}})
		snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "b", Member: "m", Values: map[string]float64{"i": float64(i)}})
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "a", Healthy: true})
	}
	require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	require.NoError(t, s.Maintain(ctx, time.Time{}))

	got, err := s.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "a", Limit: 60})
	require.NoError(t, err)
	require.Len(t, got, 60)
	assert.True(t, got[59].Time.Equal(end), "the newest last")
	plan, err := postgres.HistoryPlan(ctx, s, "metrics", store.HistoryQuery{Cluster: "a", Limit: 60})
	require.NoError(t, err)
	assert.LessOrEqual(t, rowsScanned(t, plan, "metrics_raw"), 61.0, "%s", plan)
	plan, err = postgres.HistoryPlan(ctx, s, "health", store.HistoryQuery{Cluster: "a", Limit: 60})
	require.NoError(t, err)
	assert.LessOrEqual(t, rowsScanned(t, plan, "health_raw"), 61.0, "%s", plan)
}

// Finite values up to the largest float64 (a rate of a hostile member's counter) roll
// up into finite means at the minute and the hour, whatever else the step holds, and
// the other clusters' rollups and the retention go on.
func TestRollupOfHugeValues(t *testing.T) {
	base := hoursAgo(t, 3)
	s := open(t, schema(t), postgres.WithRetention(postgres.Retention{Raw: time.Hour, Minute: 2 * time.Hour, Hour: 4 * time.Hour}))
	ctx := ctxT(t)
	var snaps []store.MetricSnapshot
	var checks []store.HealthCheck
	for i := range 360 {
		at := base.Add(time.Duration(i) * 30 * time.Second)
		snaps = append(snaps,
			store.MetricSnapshot{Time: at, Cluster: "c", Member: "m1", Values: map[string]float64{
				"max": math.MaxFloat64, "big": 1e308, "mixed": []float64{1e308, -1e308}[i%2], "small": 1e-300}},
			store.MetricSnapshot{Time: at, Cluster: "ok", Member: "m1", Values: map[string]float64{"i": float64(i)}})
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "c", Healthy: true,
			Values: map[string]float64{"big": 1e308, "mixed": []float64{1e308, 1}[i%2]}})
	}
	require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))

	now := base.Add(3*time.Hour + 30*time.Second)
	require.NoError(t, s.Maintain(ctx, now))
	for _, name := range []string{"health_1m", "metrics_1m", "health_1h", "metrics_1h"} {
		var done time.Time
		require.NoError(t, s.Pool().QueryRow(ctx, `SELECT done_until FROM rollup_state WHERE name = $1`, name).Scan(&done))
		assert.True(t, done.Equal(base.Add(3*time.Hour)), "%s rolled up to %v", name, done)
		assert.Zero(t, count(t, s, `SELECT count(*) FROM `+name+`, unnest(vals) v WHERE v IN ('Infinity', '-Infinity', 'NaN')`), name)
	}
	// Raw rows past the retention (1h) are deleted.
	assert.Zero(t, count(t, s, `SELECT count(*) FROM metrics_raw WHERE time < $1`, now.Add(-time.Hour)))
	assert.Zero(t, count(t, s, `SELECT count(*) FROM health_raw WHERE time < $1`, now.Add(-time.Hour)))

	for _, step := range []time.Duration{time.Minute, time.Hour} {
		got, err := s.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "c", Member: "m1", Step: step,
			Since: base.Add(2 * time.Hour), Until: base.Add(2*time.Hour + step)})
		require.NoError(t, err)
		require.Len(t, got, 1, "step %v", step)
		v := got[0].Values
		assert.Equal(t, math.MaxFloat64, v["max"], "step %v", step)
		assert.InEpsilon(t, 1e308, v["big"], 1e-12, "step %v", step)
		assert.InDelta(t, 0, v["mixed"], 1e295, "step %v", step)
		assert.InEpsilon(t, 1e-300, v["small"], 1e-12, "step %v", step)
		assert.Equal(t, math.MaxFloat64, got[0].Max["max"], "step %v", step)
		ok, err := s.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "ok", Member: "m1", Step: step,
			Since: base.Add(2 * time.Hour), Until: base.Add(2*time.Hour + step)})
		require.NoError(t, err)
		require.Len(t, ok, 1, "step %v", step)
		if step == time.Hour {
			assert.InDelta(t, 240+59.5, ok[0].Values["i"], 1e-9)
		} else {
			assert.InDelta(t, 240+0.5, ok[0].Values["i"], 1e-9)
		}
	}
	h, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "c", Step: time.Hour, Since: base.Add(2 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, h, 1)
	assert.InEpsilon(t, 1e308, h[0].Values["big"], 1e-12)
	assert.InEpsilon(t, 0.5e308, h[0].Values["mixed"], 1e-12)
}

// A record stamped at 1970 (a clock not yet synced) is deleted with the expired raw
// history, not walked from hour by hour: one job run rolls up the current hours.
func TestRollupSkipsRecordsPastRetention(t *testing.T) {
	s := open(t, schema(t))
	ctx := ctxT(t)
	now := time.Now().UTC()
	checks := []store.HealthCheck{
		{Time: time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC), Cluster: "c", Healthy: true, Values: map[string]float64{"x": 1}},
		{Time: now.Add(-10 * time.Minute), Cluster: "c", Healthy: true, Values: map[string]float64{"x": 2}},
	}
	snaps := []store.MetricSnapshot{
		{Time: time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC), Cluster: "c", Member: "m", Values: map[string]float64{"x": 1}},
		{Time: now.Add(-10 * time.Minute), Cluster: "c", Member: "m", Values: map[string]float64{"x": 2}},
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
	require.NoError(t, s.Flush(ctx))

	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, s.Maintain(mctx, now))
	for _, kind := range []string{"health", "metrics"} {
		assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM `+kind+`_raw`), kind)
		assert.Zero(t, count(t, s, `SELECT count(*) FROM `+kind+`_raw WHERE time < '2000-01-01'`), kind)
		assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM `+kind+`_1m WHERE time = $1`, store.StepStart(now.Add(-10*time.Minute), time.Minute)), kind)
		assert.Zero(t, count(t, s, `SELECT count(*) FROM `+kind+`_1m WHERE time < '2000-01-01'`), kind)
	}
}
