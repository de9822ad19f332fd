package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// The synthetic data set of BenchmarkHistory30Days: 20 clusters of 3 members, metrics
// every 10 s (one record per cluster and one per member, 6 values each, the cluster's
// with a 1.5 KB snapshot as Data), health every 30 s (4 values, a 1 KB report), kept
// as the default retention keeps them after 30 days: raw for the last 24 h, 1-minute
// and 1-hour rollups for 30 days. The rollups before the last day are generated in
// SQL; the last day goes through the real job (Maintain). The schema is kept between
// runs (regenerated when older than 6 h): drop it with
// DROP SCHEMA bench_history_30d CASCADE.
const (
	benchSchema   = "bench_history_30d"
	benchClusters = 20
	benchMembers  = 3
)

var metricNames = []string{"latency_p99_seconds", "throughput", "db_size_bytes", "db_in_use_bytes", "proposals_pending", "wal_fsync_p99_seconds"}

// valuesSQL is a float8[] of n random values around scale.
func valuesSQL(n int, scale string) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf("%s * (%d + random())", scale, i+1))
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]"
}

type benchSet struct {
	s       *postgres.Store
	now     time.Time
	rollup  time.Duration // the job rolling up the last 24 h of raw data
	sizes   map[string]int64
	total   int64
	cluster string
}

func benchData(b *testing.B) *benchSet {
	b.Helper()
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn(b), postgres.WithSchema(benchSchema), postgres.WithJobInterval(24*time.Hour),
		postgres.WithOpTimeout(time.Minute))
	require.NoError(b, err)
	b.Cleanup(func() { s.Close() })
	pool := s.Pool()
	_, err = pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_marker (generated timestamptz NOT NULL, rollup_seconds float8 NOT NULL)`)
	require.NoError(b, err)
	set := &benchSet{s: s, cluster: "c07"}
	var rollupSeconds float64
	err = pool.QueryRow(ctx, `SELECT generated, rollup_seconds FROM bench_marker WHERE generated > now() - interval '6 hours'`).Scan(&set.now, &rollupSeconds)
	if err == nil {
		set.rollup = time.Duration(rollupSeconds * float64(time.Second))
	} else {
		b.Logf("generating 30 days of history for %d clusters x %d members (once; minutes)", benchClusters, benchMembers)
		set.now = time.Now().UTC().Truncate(time.Minute)
		set.rollup = generate(b, s, set.now)
		_, err = pool.Exec(ctx, `DELETE FROM bench_marker`)
		require.NoError(b, err)
		_, err = pool.Exec(ctx, `INSERT INTO bench_marker VALUES ($1, $2)`, set.now, set.rollup.Seconds())
		require.NoError(b, err)
	}
	set.sizes = map[string]int64{}
	// A hypertable's rows are in its chunks: TimescaleDB's hypertable_size counts them.
	size := `SELECT pg_total_relation_size($1::regclass)`
	if s.Timescale() {
		var nsp string
		require.NoError(b, pool.QueryRow(ctx, `SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'timescaledb'`).Scan(&nsp))
		size = `SELECT ` + nsp + `.hypertable_size($1::regclass)`
	}
	for _, t := range []string{"health_raw", "health_1m", "health_1h", "metrics_raw", "metrics_1m", "metrics_1h"} {
		var n int64
		require.NoError(b, pool.QueryRow(ctx, size, rowsOf(b, s, t)).Scan(&n))
		set.sizes[t] = n
		set.total += n
	}
	return set
}

// rowsOf is the table that holds history table t's rows: t, or the materialized table
// of t's continuous aggregate.
func rowsOf(b *testing.B, s *postgres.Store, t string) string {
	if !s.ContinuousAggregates() || strings.HasSuffix(t, "_raw") {
		return t
	}
	return materialization(b, s, t)
}

func generate(b *testing.B, s *postgres.Store, now time.Time) time.Duration {
	ctx := context.Background()
	pool := s.Pool()
	// Continuous aggregates are written by their refresh only: the rollups before the
	// last day go straight into their materialized tables.
	into := map[string]string{}
	for _, t := range []string{"health_raw", "health_1m", "health_1h", "metrics_raw", "metrics_1m", "metrics_1h"} {
		into[t] = rowsOf(b, s, t)
		empty := "TRUNCATE "
		if s.ContinuousAggregates() {
			empty = "DELETE FROM " // TimescaleDB refuses to truncate the source of an aggregate
		}
		_, err := pool.Exec(ctx, empty+into[t])
		require.NoError(b, err)
	}
	rawStart := now.Add(-24 * time.Hour).Truncate(time.Hour)
	from := now.Add(-30 * 24 * time.Hour).Truncate(time.Hour)
	snap := map[string]any{"members": []map[string]any{}}
	for i := range benchMembers {
		snap["members"] = append(snap["members"].([]map[string]any), map[string]any{"id": fmt.Sprintf("%016x", i+1), "name": fmt.Sprintf("m%d", i+1),
			"endpoint": "https://10.0.0.1:2379", "latency": map[string]float64{"p50Seconds": 0.001, "p95Seconds": 0.002, "p99Seconds": 0.003},
			"db":   map[string]float64{"size": 1e8, "inUse": 9e7, "quota": 2e9, "growthRate": 12.5},
			"raft": map[string]any{"hasLeader": true, "isLeader": i == 0, "proposalsCommitted": 123456, "proposalsApplied": 123456}})
	}
	data, _ := json.Marshal(snap)
	// A report's size; its content does not matter here.
	healthData := `{"pad":"` + strings.Repeat("x", 990) + `"}`
	var mnames, hnames int32
	require.NoError(b, pool.QueryRow(ctx, `INSERT INTO value_names (names) VALUES ($1) ON CONFLICT (names) DO UPDATE SET names = excluded.names RETURNING id`,
		sorted(metricNames)).Scan(&mnames))
	require.NoError(b, pool.QueryRow(ctx, `INSERT INTO value_names (names) VALUES ($1) ON CONFLICT (names) DO UPDATE SET names = excluded.names RETURNING id`,
		sorted(metricNames[:4])).Scan(&hnames))
	m, h := fmt.Sprint(mnames), fmt.Sprint(hnames)
	mv, hv := len(metricNames), 4
	clusters := fmt.Sprintf(`(SELECT format('c%%s', lpad(i::text, 2, '0')) AS c FROM generate_series(0, %d) i) cl`, benchClusters-1)
	members := `(SELECT unnest(ARRAY['', 'm1', 'm2', 'm3']) AS m) mb`
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		{"metrics 1m", `INSERT INTO ` + into["metrics_1m"] + ` (cluster, time, member, samples, names, vals, maxs)
SELECT c, t, m, 6, ` + m + `, ` + valuesSQL(mv, "1") + `, ` + valuesSQL(mv, "2") + `
FROM ` + clusters + `, ` + members + `, generate_series($1::timestamptz, $2::timestamptz - interval '1 minute', interval '1 minute') t`, []any{from, rawStart}},
		{"metrics 1h", `INSERT INTO ` + into["metrics_1h"] + ` (cluster, time, member, samples, names, vals, maxs)
SELECT c, t, m, 360, ` + m + `, ` + valuesSQL(mv, "1") + `, ` + valuesSQL(mv, "2") + `
FROM ` + clusters + `, ` + members + `, generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') t`, []any{from, rawStart}},
		{"health 1m", `INSERT INTO ` + into["health_1m"] + ` (cluster, time, samples, healthy, names, vals, maxs)
SELECT c, t, 2, true, ` + h + `, ` + valuesSQL(hv, "1") + `, ` + valuesSQL(hv, "2") + `
FROM ` + clusters + `, generate_series($1::timestamptz, $2::timestamptz - interval '1 minute', interval '1 minute') t`, []any{from, rawStart}},
		{"health 1h", `INSERT INTO ` + into["health_1h"] + ` (cluster, time, samples, healthy, names, vals, maxs)
SELECT c, t, 120, true, ` + h + `, ` + valuesSQL(hv, "1") + `, ` + valuesSQL(hv, "2") + `
FROM ` + clusters + `, generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') t`, []any{from, rawStart}},
		{"metrics raw", `INSERT INTO metrics_raw (cluster, time, member, names, vals, data)
SELECT c, t, m, ` + m + `, ` + valuesSQL(mv, "1") + `, CASE WHEN m = '' THEN $3::jsonb END
FROM ` + clusters + `, ` + members + `, generate_series($1::timestamptz, $2::timestamptz, interval '10 seconds') t`, []any{rawStart, now, string(data)}},
		{"health raw", `INSERT INTO health_raw (cluster, time, healthy, names, vals, data)
SELECT c, t, true, ` + h + `, ` + valuesSQL(hv, "1") + `, $3::jsonb
FROM ` + clusters + `, generate_series($1::timestamptz, $2::timestamptz, interval '30 seconds') t`, []any{rawStart, now, healthData}},
		{"watermarks", `UPDATE rollup_state SET done_until = $1`, []any{rawStart}},
	}
	for _, st := range steps {
		start := time.Now()
		_, err := pool.Exec(ctx, st.sql, st.args...)
		require.NoError(b, err, st.what)
		b.Logf("generated %s in %v", st.what, time.Since(start).Round(time.Millisecond))
	}
	start := time.Now()
	require.NoError(b, s.Maintain(ctx, now.Add(time.Second)))
	rollup := time.Since(start)
	b.Logf("the job rolled up the last 24 h (%d raw metric and health rows) in %v", benchClusters*4*8641+benchClusters*2881, rollup.Round(time.Millisecond))
	_, err := pool.Exec(ctx, `VACUUM ANALYZE`)
	require.NoError(b, err)
	return rollup
}

// BenchmarkHistory30Days measures the PostgreSQL history of 20 clusters x 3 members
// after 30 days at the default retention: storage, and the time to read one cluster's
// last 24 h (5-minute steps, from the minute rollups) and last 30 days (1-hour steps,
// from the hour rollups), metrics (4 series) and health. Pointed at a database with the
// timescaledb extension (ETCD_MONITOR_TEST_POSTGRES_URL), it measures hypertables and
// continuous aggregates.
//
//	go test -run '^$' -bench History30Days -benchtime 20x ./store/postgres/
func BenchmarkHistory30Days(b *testing.B) {
	set := benchData(b)
	b.Logf("storage: %.0f MB in all (%v); the job's rollup of the last 24 h took %v", float64(set.total)/1e6, mb(set.sizes), set.rollup.Round(time.Millisecond))
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		metrics bool
		span    time.Duration
		step    time.Duration
		want    int
	}{
		{"Metrics24h", true, 24 * time.Hour, 5 * time.Minute, 288 * 4},
		{"Metrics30d", true, 30 * 24 * time.Hour, time.Hour, 720 * 4},
		{"Health24h", false, 24 * time.Hour, 5 * time.Minute, 288},
		{"Health30d", false, 30 * 24 * time.Hour, time.Hour, 720},
	} {
		b.Run(c.name, func(b *testing.B) {
			q := store.HistoryQuery{Cluster: set.cluster, Since: set.now.Add(-c.span), Until: set.now, Step: c.step, Limit: 5000}
			var n int
			for b.Loop() {
				if c.metrics {
					r, err := set.s.MetricSnapshots(ctx, q)
					require.NoError(b, err)
					n = len(r)
				} else {
					r, err := set.s.HealthChecks(ctx, q)
					require.NoError(b, err)
					n = len(r)
				}
			}
			require.InDelta(b, c.want, n, float64(c.want)/50, "records")
			b.ReportMetric(float64(n), "records")
			b.ReportMetric(float64(set.total)/1e6, "storage-MB")
		})
	}
}

func mb(sizes map[string]int64) string {
	var parts []string
	for _, t := range []string{"metrics_raw", "metrics_1m", "metrics_1h", "health_raw", "health_1m", "health_1h"} {
		parts = append(parts, fmt.Sprintf("%s %.0f MB", t, float64(sizes[t])/1e6))
	}
	return strings.Join(parts, ", ")
}

func sorted(ns []string) []string {
	out := append([]string(nil), ns...)
	slices.Sort(out)
	return out
}
