package postgres_test

import (
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// No server here has TimescaleDB, so its path has not run against it. What can be
// checked without it is: the SQL of that path parses, binds its arguments by
// TimescaleDB's parameter names and runs, against stand-ins of create_hypertable and
// drop_chunks that record their calls; the migration makes every history table a
// hypertable with the chunk intervals meant; retention drops chunks of each table
// before deleting rows, at the cut it deletes at; and on a plain PostgreSQL the store
// does not take its tables for hypertables.
func TestTimescaleSQL(t *testing.T) {
	sch := schema(t)
	s := open(t, sch, postgres.WithRetention(postgres.Retention{Raw: time.Hour, Minute: 2 * time.Hour, Hour: 4 * time.Hour}))
	ctx := ctxT(t)
	assert.False(t, s.Timescale(), "plain PostgreSQL")
	_, err := s.Pool().Exec(ctx, `
CREATE TABLE ts_calls (id serial, fn text, rel text, arg text);
-- Stand-ins with TimescaleDB's parameter names (its own take more, all defaulted).
CREATE FUNCTION create_hypertable(relation regclass, time_column_name name, chunk_time_interval interval, create_default_indexes boolean, migrate_data boolean)
	RETURNS void LANGUAGE sql AS $$
	INSERT INTO ts_calls (fn, rel, arg) VALUES ('create_hypertable', relation::text, time_column_name || ' ' || chunk_time_interval || ' ' || create_default_indexes || ' ' || migrate_data) $$;
CREATE FUNCTION drop_chunks(relation regclass, older_than timestamptz)
	RETURNS void LANGUAGE sql AS $$
	INSERT INTO ts_calls (fn, rel, arg) VALUES ('drop_chunks', relation::text, older_than::text) $$;`)
	require.NoError(t, err)
	type call struct{ Fn, Rel, Arg string }
	calls := func() []call {
		rows, err := s.Pool().Query(ctx, `SELECT fn, rel, arg FROM ts_calls ORDER BY id`)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[call])
		require.NoError(t, err)
		return out
	}

	require.NoError(t, postgres.MakeHypertables(ctx, s))
	assert.Equal(t, []call{
		{"create_hypertable", "health_raw", "time 1 day false true"},
		{"create_hypertable", "health_1m", "time 1 day false true"},
		{"create_hypertable", "health_1h", "time 30 days false true"},
		{"create_hypertable", "metrics_raw", "time 1 day false true"},
		{"create_hypertable", "metrics_1m", "time 1 day false true"},
		{"create_hypertable", "metrics_1h", "time 30 days false true"},
	}, calls())
	_, err = s.Pool().Exec(ctx, `TRUNCATE ts_calls`)
	require.NoError(t, err)

	// Retention with hypertables: chunks dropped at the cut, then rows deleted. With
	// nothing rolled up yet only the hour rollups (which roll into nothing) are cut.
	postgres.SetTimescale(s, true)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, s.Maintain(ctx, now))
	got := calls()
	require.Len(t, got, 2, "%+v", got)
	for i, kind := range []string{"health", "metrics"} {
		assert.Equal(t, "drop_chunks", got[i].Fn)
		assert.Equal(t, kind+"_1h", got[i].Rel)
		var cut time.Time
		require.NoError(t, s.Pool().QueryRow(ctx, `SELECT $1::timestamptz`, got[i].Arg).Scan(&cut))
		assert.True(t, cut.Equal(now.Add(-4*time.Hour)), "cut at %v", cut)
	}
}

// The aggregate functions of the continuous aggregates compute, on any PostgreSQL, what
// the store's own rollups compute: per value name the mean weighted by samples (finite
// whatever finite values it is given) and the maximum, at the minute from raw records
// and at the hour from the minutes.
func TestAggregateFunctionsAnswerAsRollups(t *testing.T) {
	base := hoursAgo(t, 3)
	s := open(t, schema(t), postgres.WithRetention(postgres.Retention{Raw: 4 * time.Hour, Minute: 8 * time.Hour, Hour: 16 * time.Hour}))
	ctx := ctxT(t)
	_, err := s.Pool().Exec(ctx, postgres.AggregateFunctionsSQL)
	require.NoError(t, err)
	var checks []store.HealthCheck
	for i := range 2 * 360 {
		checks = append(checks, store.HealthCheck{Time: base.Add(time.Duration(i) * 10 * time.Second), Cluster: "c", Healthy: true,
			Values: map[string]float64{
				"i":     float64(i),
				"max":   math.MaxFloat64,
				"big":   1e308,
				"mixed": []float64{1e308, -1e308, 3}[i%3],
				"neg":   []float64{-math.MaxFloat64, 1}[i%2],
				"small": 1e-300 * float64(i%5),
			}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	require.NoError(t, s.Maintain(ctx, base.Add(2*time.Hour+30*time.Second)))

	type step struct {
		Time       time.Time
		Samples    int
		Vals, Maxs []float64
	}
	read := func(sql string) []step {
		rows, err := s.Pool().Query(ctx, sql)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[step])
		require.NoError(t, err)
		require.NotEmpty(t, out)
		return out
	}
	for _, c := range []struct{ want, got string }{
		{`SELECT time, samples, vals, maxs FROM health_1m ORDER BY time`,
			`SELECT date_bin('1 minute', time, 'epoch') AS t, count(*)::integer, history_mean(vals, 1), history_max(vals)
			FROM health_raw WHERE time < $$` + base.Add(2*time.Hour).Format(time.RFC3339) + `$$ GROUP BY t ORDER BY t`},
		{`SELECT time, samples, vals, maxs FROM health_1h ORDER BY time`,
			`SELECT date_bin('1 hour', time, 'epoch') AS t, sum(samples)::integer, history_mean(vals, samples), history_max(maxs)
			FROM health_1m GROUP BY t ORDER BY t`},
	} {
		want, got := read(c.want), read(c.got)
		require.Len(t, got, len(want))
		for i := range want {
			assert.True(t, want[i].Time.Equal(got[i].Time), "%v %v", want[i].Time, got[i].Time)
			assert.Equal(t, want[i].Samples, got[i].Samples)
			assert.Equal(t, want[i].Maxs, got[i].Maxs, "maxima at %v", want[i].Time)
			require.Len(t, got[i].Vals, len(want[i].Vals))
			for j, w := range want[i].Vals {
				g := got[i].Vals[j]
				assert.False(t, math.IsInf(g, 0) || math.IsNaN(g), "mean %d at %v: %v", j, want[i].Time, g)
				assert.InDelta(t, w, g, math.Abs(w)*1e-12+1e-300, "mean %d at %v", j, want[i].Time)
			}
		}
	}
}
