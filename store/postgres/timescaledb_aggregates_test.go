package postgres_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// The continuous aggregates answer every read as the store's own rollups on plain
// PostgreSQL do, with what makes them differ from a plain GROUP BY: records whose set
// of value names changes within a minute (the aggregates have a row per set), late
// history that rewinds the watermarks, values near the largest float64, unhealthy
// checks, several members, and reads of the newest records that end inside a
// minute's rows.
func TestTimescaleDBAggregatesAnswerAsStoreRollups(t *testing.T) {
	base := hoursAgo(t, 3)
	u := timescaleDSN(t)
	// The raw retention keeps every late record below (written 20 to 80 minutes
	// before PostgreSQL's now, which the staleness goes by, whatever the minute of the
	// hour the test runs in): some of them dropped as stale would leave minutes in
	// which a value is in a share of the records unlike the others', where the
	// aggregates' means are meant to differ from the store's own rollups (see
	// TestTimescaleDBAggregatesAverageOverRecordsWithTheValue).
	ret := postgres.WithRetention(postgres.Retention{Raw: 2 * time.Hour, Minute: 3 * time.Hour, Hour: 4 * time.Hour})
	// No background job: past a job interval (a minute) on a loaded machine it would
	// maintain one store by PostgreSQL's clock rather than the test's now.
	quiet := postgres.WithJobInterval(time.Hour)
	ts := openTimescale(t, u, true, ret, quiet)
	plain := openAt(t, dsn(t), ret, quiet)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sets := []func(i int) map[string]float64{
		func(i int) map[string]float64 { return map[string]float64{"x": float64(i), "y": float64(i) / 2} },
		func(i int) map[string]float64 { return map[string]float64{"x": float64(-i)} },
		func(i int) map[string]float64 { return map[string]float64{"x": 1, "y": 2, "z": float64(i % 7)} },
	}
	records := func(from, to time.Time, extra map[string]float64) ([]store.HealthCheck, []store.MetricSnapshot) {
		var checks []store.HealthCheck
		var snaps []store.MetricSnapshot
		for i, at := 0, from; at.Before(to); i, at = i+1, at.Add(20*time.Second) {
			v := sets[i%3](i)
			for k, x := range extra {
				v[k] = x
			}
			checks = append(checks,
				store.HealthCheck{Time: at, Cluster: "a", Healthy: i%37 != 5, Values: v},
				store.HealthCheck{Time: at, Cluster: "h", Healthy: true,
					Values: map[string]float64{"big": 1e308, "mixed": []float64{1e308, -1e308, 1}[i%3], "max": math.MaxFloat64}})
			for m := range 2 {
				snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "a", Member: fmt.Sprintf("m%d", m+1), Values: sets[(i+m)%3](i)})
			}
		}
		return checks, snaps
	}
	put := func(checks []store.HealthCheck, snaps []store.MetricSnapshot) {
		for _, s := range []*postgres.Store{ts, plain} {
			require.NoError(t, s.PutHealthChecks(ctx, checks))
			require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
			require.NoError(t, s.Flush(ctx))
		}
	}
	maintain := func(now time.Time) {
		for _, s := range []*postgres.Store{ts, plain} {
			require.NoError(t, s.Maintain(ctx, now))
		}
	}
	put(records(base, base.Add(3*time.Hour), nil))
	now := base.Add(3*time.Hour + 30*time.Second)
	maintain(now)
	// Late history in minutes and an hour already rolled up (still within the raw
	// retention), with a value name the others do not have.
	put(records(base.Add(2*time.Hour+40*time.Minute+5*time.Second), base.Add(2*time.Hour+43*time.Minute), map[string]float64{"late": 9}))
	maintain(now)
	assert.Equal(t, plain.Stats().Written, ts.Stats().Written)
	assert.Equal(t, plain.Stats().Dropped, ts.Stats().Dropped)
	assert.Zero(t, ts.Stats().Dropped, "no late record stale")
	assert.Positive(t, count(t, ts, `SELECT count(*) FROM (SELECT cluster, time FROM health_1m GROUP BY 1, 2 HAVING count(*) > 1) d`),
		"minutes with a row per name set")

	for _, q := range []store.HistoryQuery{
		{Cluster: "a", Limit: 1000},
		{Cluster: "a", Limit: 1000, Until: base.Add(2*time.Hour + 30*time.Minute)},
		{Cluster: "a", Limit: 7, Until: base.Add(time.Hour + 30*time.Minute)},
		{Cluster: "a", Since: base.Add(2*time.Hour + 39*time.Minute), Until: base.Add(2*time.Hour + 44*time.Minute), Limit: 1000},
		{Cluster: "a", Step: time.Minute, Limit: 1000},
		{Cluster: "a", Step: 2 * time.Minute, Since: base.Add(time.Hour), Limit: 1000},
		{Cluster: "a", Step: time.Hour},
		{Cluster: "a", Step: 2 * time.Hour},
		{Cluster: "h", Limit: 1000},
		{Cluster: "h", Step: time.Minute, Limit: 1000},
		{Cluster: "h", Step: time.Hour},
		{Step: time.Hour, Limit: 1000},
	} {
		if q.Cluster == "h" {
			sameReads(t, ctx, plain, ts, q) // health only
		} else {
			sameReads(t, ctx, plain, ts, q, "", "m2")
		}
	}
}

// On continuous aggregates, a value that only some of a minute's records have is
// averaged over the records that have it, at every resolution: a read by the hour
// answers the same from the raw records and from the aggregates. (The store's own
// hour rollups weigh each minute's mean by all the minute's records.)
func TestTimescaleDBAggregatesAverageOverRecordsWithTheValue(t *testing.T) {
	base := hoursAgo(t, 2)
	u := timescaleDSN(t)
	s := openTimescale(t, u, true, postgres.WithJobInterval(time.Hour))
	ctx := ctxT(t)
	checks := []store.HealthCheck{
		{Time: base, Cluster: "a", Healthy: true, Values: map[string]float64{"x": 1, "y": 10}},
		{Time: base.Add(20 * time.Second), Cluster: "a", Healthy: true, Values: map[string]float64{"x": 2}},
		{Time: base.Add(40 * time.Second), Cluster: "a", Healthy: true, Values: map[string]float64{"x": 3}},
	}
	for i := range 3 {
		checks = append(checks, store.HealthCheck{Time: base.Add(time.Minute + time.Duration(i)*20*time.Second), Cluster: "a",
			Healthy: true, Values: map[string]float64{"x": 4, "y": 20}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	q := store.HistoryQuery{Cluster: "a", Step: time.Hour, Until: base.Add(time.Hour)}
	fromRaw, err := s.HealthChecks(ctx, q)
	require.NoError(t, err)
	require.NoError(t, s.Maintain(ctx, base.Add(time.Hour+time.Minute)))
	require.Equal(t, 2, count(t, s, `SELECT count(*) FROM health_1h`), "a row per name set")
	fromRollups, err := s.HealthChecks(ctx, q)
	require.NoError(t, err)
	want := []store.HealthCheck{{Time: base, Cluster: "a", Healthy: true, Samples: 6,
		Values: map[string]float64{"x": 3, "y": 17.5}, Max: map[string]float64{"x": 4, "y": 20}}}
	assert.Equal(t, want, fromRaw)
	assert.Equal(t, want, fromRollups)
}

// The job's retention on continuous aggregates leaves TimescaleDB's invalidation logs
// as they were: a row deleted below the aggregates' refreshes would add an entry to
// them on every run, for good, and every refresh would read them.
func TestTimescaleDBInvalidationLogsStayBounded(t *testing.T) {
	base := hoursAgo(t, 3)
	u := timescaleDSN(t)
	s := openTimescale(t, u, true, postgres.WithRetention(postgres.Retention{Raw: time.Hour, Minute: 2 * time.Hour, Hour: 4 * time.Hour}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var checks []store.HealthCheck
	var snaps []store.MetricSnapshot
	for at := base; at.Before(base.Add(3 * time.Hour)); at = at.Add(30 * time.Second) {
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "a", Healthy: true, Values: map[string]float64{"x": 1}})
		snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "a", Member: "m", Values: map[string]float64{"x": 1}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
	require.NoError(t, s.Flush(ctx))
	logs := func() int {
		return count(t, s, `SELECT (SELECT count(*) FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log)
	+ (SELECT count(*) FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log)`)
	}
	now := base.Add(3 * time.Hour)
	require.NoError(t, s.Maintain(ctx, now))
	require.NoError(t, s.Maintain(ctx, now))
	before := logs()
	// An hour of job runs a minute apart: each would cut a minute of raw rows and of
	// minute rollups.
	for i := range 60 {
		require.NoError(t, s.Maintain(ctx, now.Add(time.Duration(i+1)*time.Minute)))
	}
	assert.LessOrEqual(t, logs(), before+4, "invalidation log entries: %d before an hour of runs", before)
	got, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Hour})
	require.NoError(t, err)
	assert.Len(t, got, 3, "the hours rolled up")
}

// History written while the job refreshes the continuous aggregates, much of it late
// (in minutes and hours already rolled up), is in them once the job has run after it:
// every record is counted once in a read of the whole range by the hour, which the
// aggregates answer for all but the newest minutes.
func TestTimescaleDBAggregatesMissNothingWrittenDuringRefresh(t *testing.T) {
	base := hoursAgo(t, 2)
	u := timescaleDSN(t)
	s := openTimescale(t, u, true, postgres.WithJobInterval(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	writeTo := time.Now().UTC().Add(-2 * time.Minute)
	span := writeTo.Sub(base)

	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := s.Maintain(ctx, time.Time{}); err != nil {
				errc <- err
				return
			}
		}
	}()
	const batches, per = 40, 50
	n := 0
	for b := range batches {
		var checks []store.HealthCheck
		for i := range per {
			// Spread over the whole span, each batch over all of it: most land in
			// steps a refresh has passed.
			at := base.Add(time.Duration(int64(span) / (batches * per) * int64(i*batches+b))).Truncate(time.Microsecond)
			checks = append(checks, store.HealthCheck{Time: at, Cluster: "a", Healthy: true, Values: map[string]float64{"x": 1}})
		}
		require.NoError(t, s.PutHealthChecks(ctx, checks))
		require.NoError(t, s.Flush(ctx))
		n += len(checks)
	}
	close(done)
	require.NoError(t, <-errc)
	require.NoError(t, s.Maintain(ctx, time.Time{}))
	require.Equal(t, uint64(n), s.Stats().Written)

	got, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Hour, Limit: 100})
	require.NoError(t, err)
	total := 0
	for _, h := range got {
		total += h.Samples
	}
	assert.Equal(t, n, total, "every record counted once")
	assert.Positive(t, count(t, s, `SELECT count(*) FROM health_1h`), "read from the hour rollups")
}
