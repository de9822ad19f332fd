package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// materialization returns the hypertable (quoted) that holds the rows of the
// continuous aggregate view of s's schema.
func materialization(t testing.TB, s *postgres.Store, view string) string {
	t.Helper()
	var name string
	require.NoError(t, s.Pool().QueryRow(ctxT(t), `SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema() AND view_name = $1`, view).Scan(&name))
	return name
}

// A refresh that takes longer than the operation timeout (a large backlog, a loaded
// server; here one held up by a lock) completes and moves the watermark: the
// transaction that holds the rollup's watermark row while it runs is idle all that
// time, and PostgreSQL must not end its session for that.
func TestTimescaleDBRefreshOutlastsOpTimeout(t *testing.T) {
	base := hoursAgo(t, 1)
	u := timescaleDSN(t)
	op := 500 * time.Millisecond
	s := openTimescale(t, u, true, postgres.WithOpTimeout(op), postgres.WithJobInterval(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var checks []store.HealthCheck
	for at := base; at.Before(base.Add(10 * time.Minute)); at = at.Add(30 * time.Second) {
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "a", Healthy: true, Values: map[string]float64{"x": 1}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))

	// Hold the minute aggregate's rows so that its refresh waits.
	mat := materialization(t, s, "health_1m")
	blocker, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer blocker.Close(context.Background())
	tx, err := blocker.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, `LOCK TABLE `+mat+` IN EXCLUSIVE MODE`)
	require.NoError(t, err)

	// Sessions are watched from outside the blocker's transaction, which would see a
	// snapshot of them.
	mon, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer mon.Close(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Maintain(ctx, base.Add(time.Hour)) }()
	// The refresh waits on the lock, and the transaction holding the watermark row has
	// been idle for twice the operation timeout (or its session was ended).
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		var waiting, idleLong, idle int
		err := mon.QueryRow(ctx, `SELECT
	count(*) FILTER (WHERE query LIKE 'CALL %refresh_continuous_aggregate%' AND wait_event_type = 'Lock'),
	count(*) FILTER (WHERE state = 'idle in transaction' AND now() - state_change > $1::interval),
	count(*) FILTER (WHERE state = 'idle in transaction')
FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'etcd-monitor'`, (2*op).String()).Scan(&waiting, &idleLong, &idle)
		if !assert.NoError(c, err) {
			return
		}
		assert.Equal(c, 1, waiting, "refresh waiting")
		assert.True(c, idleLong == 1 || idle == 0, "watermark held past the operation timeout, or the session ended")
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, <-errc)
	var done time.Time
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT done_until FROM rollup_state WHERE name = 'health_1m'`).Scan(&done))
	assert.Equal(t, base.Add(time.Hour), done.UTC(), "minutes rolled up")
	// The read has the store's short operation timeout too, which a loaded machine may
	// exceed: a read that timed out is tried again.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Minute, Until: base.Add(time.Hour), Limit: 100})
		if assert.NoError(c, err) {
			assert.Len(c, got, 10)
		}
	}, 30*time.Second, 50*time.Millisecond)
}

// The job refreshes the continuous aggregates in a pool of one connection (the DSN's
// pool_max_conns), as it rolls up in one on plain PostgreSQL: the refresh, which runs
// beside the transaction holding the watermark row, must not wait for a connection of
// the pool that transaction holds.
func TestTimescaleDBRefreshInPoolOfOne(t *testing.T) {
	base := hoursAgo(t, 1)
	u := timescaleDSN(t)
	s := openTimescale(t, u+"&pool_max_conns=1", true, postgres.WithJobInterval(time.Hour))
	require.Equal(t, int32(1), s.Pool().Config().MaxConns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var checks []store.HealthCheck
	for at := base; at.Before(base.Add(10 * time.Minute)); at = at.Add(30 * time.Second) {
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "a", Healthy: true, Values: map[string]float64{"x": 1}})
	}
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	require.NoError(t, s.Maintain(ctx, base.Add(time.Hour)))
	got, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Hour, Limit: 100})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, len(checks), got[0].Samples)
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM health_1h`), "read from the hour rollups")
}

// The newest records (no step) are read from the continuous aggregates as from the
// store's own rollups, newest first on an index and no further than they need: not by
// reading (and sorting) every row of the minutes and hours the query's range has
// there. Two days of minutes of two members, the newest 60 records read. Autovacuum
// has not analyzed the chunks yet (seconds old): Maintain gathers the statistics the
// plan needs.
func TestTimescaleDBNewestReadsOnlyThem(t *testing.T) {
	u := timescaleDSN(t)
	s := openTimescale(t, u, true, postgres.WithJobInterval(time.Hour), postgres.WithQueueSize(50000),
		postgres.WithRetention(postgres.Retention{Raw: time.Hour, Minute: 3 * 24 * time.Hour}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	end := time.Now().UTC().Truncate(time.Second)
	var snaps []store.MetricSnapshot
	var checks []store.HealthCheck
	for at := end.Add(-48 * time.Hour); !at.After(end); at = at.Add(30 * time.Second) {
		for _, m := range []string{"m1", "m2"} {
			snaps = append(snaps, store.MetricSnapshot{Time: at, Cluster: "a", Member: m, Values: map[string]float64{"x": 1}})
		}
		checks = append(checks, store.HealthCheck{Time: at, Cluster: "a", Healthy: true, Values: map[string]float64{"x": 1}})
	}
	require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
	require.NoError(t, s.PutHealthChecks(ctx, checks))
	require.NoError(t, s.Flush(ctx))
	require.NoError(t, s.Maintain(ctx, time.Time{}))
	require.Greater(t, count(t, s, `SELECT count(*) FROM metrics_1m`), 5000)

	for _, q := range []store.HistoryQuery{
		{Cluster: "a", Limit: 60},
		{Limit: 60},
		{Cluster: "a", Until: end.Add(-2 * time.Hour), Limit: 60},
		{Cluster: "a", Member: "m2", Until: end.Add(-2 * time.Hour), Limit: 60},
	} {
		got, err := s.MetricSnapshots(ctx, q)
		require.NoError(t, err)
		require.Len(t, got, 60)
		plan, err := postgres.HistoryPlan(ctx, s, "metrics", q)
		require.NoError(t, err)
		assert.LessOrEqual(t, rowsScanned(t, plan, ""), 1000.0, "metrics %+v: %s", q, plan)
		if q.Member != "" {
			continue
		}
		h, err := s.HealthChecks(ctx, q)
		require.NoError(t, err)
		require.Len(t, h, 60)
		plan, err = postgres.HistoryPlan(ctx, s, "health", q)
		require.NoError(t, err)
		assert.LessOrEqual(t, rowsScanned(t, plan, ""), 1000.0, "health %+v: %s", q, plan)
	}
}

// A replica of the schema before continuous aggregates that is rolling up while a
// newer one starts keeps what it rolled up, and the newer one starts: the migration,
// which replaces the rollup tables by aggregates only when nothing was rolled up into
// them, decides once that rollup has committed. Deciding before, it went on to drop
// the tables the rollup had just written (and failed the start, the rows' first chunk
// depending on them).
func TestTimescaleDBMigrationWaitsForRollupInProgress(t *testing.T) {
	at := hoursAgo(t, 1)
	u := timescaleDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sch := schema(t)
	old, err := postgres.Open(ctx, u, postgres.WithSchema(sch), postgres.WithSchemaVersion(4))
	require.NoError(t, err)
	require.NoError(t, old.Close())

	// The older replica's rollup, not yet committed.
	cfg, err := pgx.ParseConfig(u)
	require.NoError(t, err)
	cfg.RuntimeParams["search_path"] = sch
	rollup, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer rollup.Close(context.Background())
	tx, err := rollup.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, `SELECT done_until FROM rollup_state WHERE name = 'health_1m' FOR UPDATE`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO health_1m (cluster, time, samples, healthy) VALUES ('a', $1, 2, true)`, at)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE rollup_state SET done_until = $1 WHERE name = 'health_1m'`, at.Add(time.Minute))
	require.NoError(t, err)

	type opened struct {
		s   *postgres.Store
		err error
	}
	done := make(chan opened, 1)
	go func() {
		s, err := postgres.Open(ctx, u, postgres.WithSchema(sch))
		done <- opened{s, err}
	}()
	mon, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer mon.Close(context.Background())
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		var waiting int
		err := mon.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	AND application_name = 'etcd-monitor' AND wait_event_type = 'Lock'`).Scan(&waiting)
		if assert.NoError(c, err) {
			assert.Equal(c, 1, waiting, "the migration waits for the rollup")
		}
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, tx.Commit(ctx))
	o := <-done
	require.NoError(t, o.err)
	defer o.s.Close()
	assert.False(t, o.s.ContinuousAggregates(), "a database with rollups keeps them")
	got, err := o.s.HealthChecks(ctx, store.HistoryQuery{Cluster: "a", Step: time.Minute, Until: at.Add(time.Minute)})
	require.NoError(t, err)
	if assert.Len(t, got, 1) {
		assert.Equal(t, 2, got[0].Samples)
	}
}

// Maintain refreshes the continuous aggregates under a context whose deadline is far
// off (a hundred days): how long the watermark's transaction may stay idle meanwhile is
// bounded by what PostgreSQL takes, not an error on every run.
func TestTimescaleDBMaintainWithDistantDeadline(t *testing.T) {
	base := hoursAgo(t, 1)
	u := timescaleDSN(t)
	s := openTimescale(t, u, true, postgres.WithJobInterval(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 100*24*time.Hour)
	defer cancel()
	require.NoError(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: base, Cluster: "a", Healthy: true}}))
	require.NoError(t, s.Flush(ctx))
	require.NoError(t, s.Maintain(ctx, base.Add(time.Hour)))
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM health_1h`))
}
