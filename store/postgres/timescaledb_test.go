package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
	"github.com/etcd-monitor/etcd-monitor/store/storetest"
)

// timescaleDSN returns the URL of a database of t's own on the test server, with the
// timescaledb extension created in it and dropped when t ends. It skips t when the
// server cannot load TimescaleDB: Debian has no package of it, so CI runs without and
// TestTimescaleSQL checks that path's SQL against stand-ins; where TimescaleDB is
// installed, .ci/postgres preloads it and these tests run.
func timescaleDSN(t *testing.T) string {
	t.Helper()
	base := dsn(t)
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var available bool
	var preload string
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
	current_setting('shared_preload_libraries')`).Scan(&available, &preload))
	if !available || !strings.Contains(preload, "timescaledb") {
		t.Skip("the test server cannot load TimescaleDB (not installed, or not in shared_preload_libraries); TestTimescaleSQL covers its SQL")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	db := "tsdb_" + hex.EncodeToString(b)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+db)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop database %s: %v", db, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", db, err)
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + db
	tconn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	defer tconn.Close(ctx)
	_, err = tconn.Exec(ctx, `CREATE EXTENSION timescaledb`)
	require.NoError(t, err)
	return u.String()
}

// openAt opens a store on the database at u in a fresh schema, closed when t ends.
func openAt(t testing.TB, u string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctxT(t), u, append([]postgres.Option{postgres.WithSchema(schema(t))}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// The two ways the rollups run on TimescaleDB: as its continuous aggregates (a new
// database), and as the store's own tables (a database that had rolled up history
// before the schema version that brought the aggregates, and keeps it).
var timescaleModes = []struct {
	name       string
	aggregates bool
}{{"ContinuousAggregates", true}, {"StoreRollups", false}}

// openTimescale opens a store on the TimescaleDB database at u in a fresh schema, its
// rollups continuous aggregates or the store's own tables (an upgraded database).
func openTimescale(t *testing.T, u string, aggregates bool, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	if aggregates {
		s := openAt(t, u, opts...)
		require.True(t, s.Timescale())
		require.True(t, s.ContinuousAggregates())
		return s
	}
	ctx := ctxT(t)
	sch := schema(t)
	old, err := postgres.Open(ctx, u, append([]postgres.Option{postgres.WithSchema(sch), postgres.WithSchemaVersion(4)}, opts...)...)
	require.NoError(t, err)
	require.True(t, old.Timescale())
	// The previous schema's database has rolled up history.
	_, err = old.Pool().Exec(ctx, `UPDATE rollup_state SET done_until = '2000-01-01'`)
	require.NoError(t, err)
	require.NoError(t, old.Close())
	s, err := postgres.Open(ctx, u, append([]postgres.Option{postgres.WithSchema(sch)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.True(t, s.Timescale())
	require.False(t, s.ContinuousAggregates(), "a database with rollups keeps them")
	_, err = s.Pool().Exec(ctx, `UPDATE rollup_state SET done_until = NULL`)
	require.NoError(t, err)
	return s
}

// With TimescaleDB, the store passes the contract of every store.Store on hypertables
// and continuous aggregates.
func TestTimescaleDBContract(t *testing.T) {
	u := timescaleDSN(t)
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		sch := schema(t)
		o := func() *postgres.Store {
			s, err := postgres.Open(ctxT(t), u, postgres.WithSchema(sch))
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			require.True(t, s.Timescale(), "history tables are hypertables")
			require.True(t, s.ContinuousAggregates(), "rollups are continuous aggregates")
			return s
		}
		s := o()
		return s, func() store.Store {
			require.NoError(t, s.Close())
			return o()
		}
	}, storetest.HugeValues, storetest.RecordTimeBound)
}

// Five days of history every five minutes, on TimescaleDB and on plain PostgreSQL: the
// migration makes every history table a hypertable or continuous aggregate (in the
// store's own schema), the job's rollups and retention leave both with the same rows
// within the retention, the chunks older than it are dropped, and every read answers
// the same.
func TestTimescaleDBRollupAndRetention(t *testing.T) {
	u := timescaleDSN(t)
	for _, mode := range timescaleModes {
		t.Run(mode.name, func(t *testing.T) { testTimescaleDBRollupAndRetention(t, u, mode.aggregates) })
	}
}

func testTimescaleDBRollupAndRetention(t *testing.T, u string, aggregates bool) {
	ret := postgres.WithRetention(postgres.Retention{Raw: 24 * time.Hour, Minute: 3 * 24 * time.Hour, Hour: 30 * 24 * time.Hour})
	// No background job: it would roll up and cut by PostgreSQL's clock rather than the
	// test's now, on one store and not the other, once the test has run a job interval
	// (a minute, which five days' rollups on a loaded machine take).
	quiet := postgres.WithJobInterval(time.Hour)
	ts := openTimescale(t, u, aggregates, ret, quiet)
	plain := openAt(t, dsn(t), ret, quiet)
	// Five days to roll up an hour at a time, twice: more than ctxT's half-minute on a
	// busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	require.False(t, plain.Timescale())

	type hyper struct {
		Table string
		Chunk time.Duration
	}
	rows, err := ts.Pool().Query(ctx, `SELECT h.hypertable_name::text, d.time_interval
FROM timescaledb_information.hypertables h JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)
WHERE h.hypertable_schema = current_schema()
UNION ALL
SELECT c.view_name::text, d.time_interval
FROM timescaledb_information.continuous_aggregates c JOIN timescaledb_information.dimensions d
	ON d.hypertable_schema = c.materialization_hypertable_schema AND d.hypertable_name = c.materialization_hypertable_name
WHERE c.view_schema = current_schema() ORDER BY 1`)
	require.NoError(t, err)
	hypers, err := pgx.CollectRows(rows, pgx.RowToStructByPos[hyper])
	require.NoError(t, err)
	day := 24 * time.Hour
	assert.Equal(t, []hyper{
		{"health_1h", 30 * day}, {"health_1m", day}, {"health_raw", day},
		{"metrics_1h", 30 * day}, {"metrics_1m", day}, {"metrics_raw", day},
	}, hypers)
	aggs := count(t, ts, `SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema()`)
	if aggregates {
		assert.Equal(t, 4, aggs)
	} else {
		assert.Zero(t, aggs)
	}

	base := time.Now().UTC().Truncate(day).Add(-5 * day)
	var checks []store.HealthCheck
	var snaps []store.MetricSnapshot
	for i := range 5 * 24 * 12 {
		at := base.Add(time.Duration(i) * 5 * time.Minute)
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "a", Healthy: i%100 != 7,
			Values: map[string]float64{"i": float64(i), "half": float64(i) / 2}})
		snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "a", Member: "m1",
			Values: map[string]float64{"i": float64(i)}})
	}
	for _, s := range []*postgres.Store{ts, plain} {
		require.NoError(t, s.PutHealthChecks(ctx, checks))
		require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
		require.NoError(t, s.Flush(ctx))
		assert.Equal(t, uint64(2*len(checks)), s.Stats().Written)
	}
	chunks := func(table string) int {
		return count(t, ts, `SELECT count(*) FROM timescaledb_information.chunks
WHERE hypertable_schema = current_schema() AND hypertable_name = $1`, table)
	}
	require.GreaterOrEqual(t, chunks("health_raw"), 5, "a chunk a day")
	require.GreaterOrEqual(t, chunks("metrics_raw"), 5)

	now := base.Add(5*day + 30*time.Second)
	for _, s := range []*postgres.Store{ts, plain} {
		require.NoError(t, s.Maintain(ctx, now))
		require.NoError(t, s.Maintain(ctx, now), "idempotent")
	}
	// Raw rows are kept a day: the chunks of the four days before are dropped whole.
	assert.LessOrEqual(t, chunks("health_raw"), 2)
	assert.LessOrEqual(t, chunks("metrics_raw"), 2)
	// Within the retention, the same rows. Continuous aggregates and the raw tables
	// under them are cut a whole chunk at a time, so they may keep older rows too.
	for _, table := range []string{"health_raw", "health_1m", "health_1h", "metrics_raw", "metrics_1m", "metrics_1h"} {
		n := count(t, plain, `SELECT count(*) FROM `+table)
		assert.Positive(t, n, table)
		var first time.Time
		require.NoError(t, plain.Pool().QueryRow(ctx, `SELECT min(time) FROM `+table).Scan(&first))
		assert.Equal(t, n, count(t, ts, `SELECT count(*) FROM `+table+` WHERE time >= $1`, first), table)
		if !aggregates {
			assert.Equal(t, n, count(t, ts, `SELECT count(*) FROM `+table), table)
		}
	}

	for _, q := range []store.HistoryQuery{
		{Cluster: "a"},
		{Cluster: "a", Limit: 1000},
		{Cluster: "a", Step: time.Minute, Since: now.Add(-3 * time.Hour), Limit: 1000},
		{Cluster: "a", Step: time.Minute, Since: now.Add(-50 * time.Hour), Until: now.Add(-47 * time.Hour), Limit: 1000},
		{Cluster: "a", Step: time.Hour, Limit: 1000},
		{Cluster: "a", Step: 6 * time.Hour, Limit: 1000},
	} {
		sameReads(t, ctx, plain, ts, q, "m1")
	}
}

// sameReads checks that got answers q as want does, with health checks and with the
// metric snapshots of each of members ("": all), none of them empty.
func sameReads(t *testing.T, ctx context.Context, want, got *postgres.Store, q store.HistoryQuery, members ...string) {
	t.Helper()
	wantH, err := want.HealthChecks(ctx, q)
	require.NoError(t, err)
	require.NotEmpty(t, wantH, "%+v", q)
	gotH, err := got.HealthChecks(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, wantH, gotH, "health %+v", q)
	for _, m := range members {
		q.Member = m
		wantM, err := want.MetricSnapshots(ctx, q)
		require.NoError(t, err)
		require.NotEmpty(t, wantM, "%+v", q)
		gotM, err := got.MetricSnapshots(ctx, q)
		require.NoError(t, err)
		assert.Equal(t, wantM, gotM, "metrics %+v", q)
	}
}

// Retention on hypertables drops only chunks the rollups have passed: with the minute
// rollups behind the raw retention, every raw row they have not rolled up is kept, and
// only the chunks wholly before them are dropped (with the store's own rollups, the
// rolled-up rows of the chunk left are deleted too).
func TestTimescaleDBRetentionWaitsForRollups(t *testing.T) {
	u := timescaleDSN(t)
	for _, mode := range timescaleModes {
		t.Run(mode.name, func(t *testing.T) { testTimescaleDBRetentionWaitsForRollups(t, u, mode.aggregates) })
	}
}

func testTimescaleDBRetentionWaitsForRollups(t *testing.T, u string, aggregates bool) {
	day := 24 * time.Hour
	s := openTimescale(t, u, aggregates, postgres.WithJobInterval(time.Hour),
		postgres.WithRetention(postgres.Retention{Raw: day, Minute: 3 * day, Hour: 30 * day}))
	ctx := ctxT(t)

	base := time.Now().UTC().Truncate(day).Add(-4 * day)
	var checks []store.HealthCheck
	for i := range 4 * 24 * 4 {
		checks = append(checks, store.HealthCheck{Time: base.Add(time.Duration(i) * 15 * time.Minute), Cluster: "a", Healthy: true,
			Values: map[string]float64{"i": float64(i)}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	// The minute rollups reached only a day and a half in; the raw retention's cut
	// (a day before now) is two days further.
	done := base.Add(36 * time.Hour)
	_, err := s.Pool().Exec(ctx, `UPDATE rollup_state SET done_until = $1 WHERE name = 'health_1m'`, done)
	require.NoError(t, err)

	require.NoError(t, postgres.Retain(ctx, s, "health", base.Add(4*day+30*time.Second)))
	want := 0
	for _, c := range checks {
		if !c.Time.Before(done) {
			want++
		}
	}
	assert.Equal(t, want, count(t, s, `SELECT count(*) FROM health_raw WHERE time >= $1`, done), "raw rows not rolled up kept")
	if aggregates {
		assert.Equal(t, 12*4, count(t, s, `SELECT count(*) FROM health_raw WHERE time < $1`, done), "the rest of the chunk kept")
	} else {
		assert.Zero(t, count(t, s, `SELECT count(*) FROM health_raw WHERE time < $1`, done), "rolled-up raw rows past retention deleted")
	}
	assert.Equal(t, 3, count(t, s, `SELECT count(*) FROM timescaledb_information.chunks
WHERE hypertable_schema = current_schema() AND hypertable_name = 'health_raw'`), "the first day's chunk dropped")
}
