package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migration is one versioned step of the schema. Steps are applied in order, each in
// its own transaction together with its row in schema_migrations, so a step is either
// applied and recorded or neither. A step's SQL never changes once released: a change
// is a new step.
type migration struct {
	version int
	name    string
	sql     string
	// fn, when set, runs after sql in the same transaction.
	fn func(ctx context.Context, tx pgx.Tx) error
}

// migrations of the schema. History tables are plain tables with a B-tree primary key
// (cluster, time[, member]) for the queries of one cluster and a BRIN index on time for
// the rollup and retention scans over all clusters (rows arrive in time order, so a
// BRIN index is a few pages): see the README's measurements.
var migrations = []migration{
	{version: 1, name: "state", sql: `
CREATE TABLE alerts (
	fingerprint text PRIMARY KEY,
	cluster     text NOT NULL DEFAULT '',
	state       text NOT NULL,
	active_at   timestamptz NOT NULL,
	fired_at    timestamptz,
	data        jsonb
);
CREATE TABLE notification_groups (
	receiver  text NOT NULL,
	group_key text NOT NULL,
	sent_at   timestamptz NOT NULL,
	firing    text[],
	resolved  text[],
	data      jsonb,
	PRIMARY KEY (receiver, group_key)
);
CREATE TABLE notifications (
	id           bigserial PRIMARY KEY,
	time         timestamptz NOT NULL,
	receiver     text NOT NULL,
	group_key    text NOT NULL,
	group_labels jsonb,
	attempt      integer NOT NULL,
	status       text NOT NULL,
	error        text NOT NULL DEFAULT '',
	firing       text[],
	resolved     text[]
);
CREATE INDEX notifications_receiver ON notifications (receiver, group_key, id);
CREATE TABLE silences (
	id     text PRIMARY KEY,
	record jsonb NOT NULL
);
CREATE TABLE benchmarks (
	id      text PRIMARY KEY,
	time    timestamptz NOT NULL,
	cluster text NOT NULL DEFAULT '',
	name    text NOT NULL DEFAULT '',
	data    jsonb
);
CREATE INDEX benchmarks_cluster_time ON benchmarks (cluster, time);
CREATE TABLE maintenance_ops (
	id       text PRIMARY KEY,
	cluster  text NOT NULL DEFAULT '',
	kind     text NOT NULL DEFAULT '',
	state    text NOT NULL DEFAULT '',
	started  timestamptz NOT NULL,
	finished timestamptz,
	alert    text NOT NULL DEFAULT '',
	dry_run  boolean NOT NULL DEFAULT false,
	data     jsonb
);
CREATE INDEX maintenance_ops_cluster_started ON maintenance_ops (cluster, started);
CREATE TABLE leases (
	name     text PRIMARY KEY,
	holder   text NOT NULL,
	token    bigint NOT NULL,
	expires  timestamptz NOT NULL,
	acquired timestamptz NOT NULL
);
`},
	{version: 2, name: "history", sql: `
-- A record's values are two aligned columns: names, the id of its sorted set of value
-- names in value_names (a handful of sets in all), and vals, the numbers. Rollups add
-- maxs, the maxima. Against a jsonb map this is half the size, and reads decode
-- binary float arrays instead of parsing JSON (see the README's measurements).
CREATE TABLE value_names (
	id    serial PRIMARY KEY,
	names text[] NOT NULL UNIQUE
);
CREATE TABLE health_raw (
	cluster text NOT NULL,
	time    timestamptz NOT NULL,
	healthy boolean NOT NULL,
	names   integer,
	vals    float8[],
	data    jsonb,
	PRIMARY KEY (cluster, time)
);
CREATE TABLE health_1m (
	cluster text NOT NULL,
	time    timestamptz NOT NULL,
	samples integer NOT NULL,
	healthy boolean NOT NULL,
	names   integer,
	vals    float8[],
	maxs    float8[],
	PRIMARY KEY (cluster, time)
);
CREATE TABLE health_1h (LIKE health_1m INCLUDING ALL);
CREATE TABLE metrics_raw (
	cluster text NOT NULL,
	time    timestamptz NOT NULL,
	member  text NOT NULL,
	names   integer,
	vals    float8[],
	data    jsonb,
	PRIMARY KEY (cluster, time, member)
);
CREATE TABLE metrics_1m (
	cluster text NOT NULL,
	time    timestamptz NOT NULL,
	member  text NOT NULL,
	samples integer NOT NULL,
	names   integer,
	vals    float8[],
	maxs    float8[],
	PRIMARY KEY (cluster, time, member)
);
CREATE TABLE metrics_1h (LIKE metrics_1m INCLUDING ALL);
CREATE INDEX health_raw_time ON health_raw USING brin (time);
CREATE INDEX health_1m_time ON health_1m USING brin (time);
CREATE INDEX health_1h_time ON health_1h USING brin (time);
CREATE INDEX metrics_raw_time ON metrics_raw USING brin (time);
CREATE INDEX metrics_1m_time ON metrics_1m USING brin (time);
CREATE INDEX metrics_1h_time ON metrics_1h USING brin (time);
-- done_until: the rollup holds every source row before it (NULL: nothing rolled up yet).
CREATE TABLE rollup_state (
	name       text PRIMARY KEY,
	done_until timestamptz
);
INSERT INTO rollup_state (name) VALUES ('health_1m'), ('health_1h'), ('metrics_1m'), ('metrics_1h');
`},
	{version: 3, name: "timescaledb", fn: timescale},
	{version: 4, name: "alert history", sql: `
-- Transitions of alerts to firing and resolved, recorded by PutAlerts in its own
-- transaction, so every replica reads the same alert history.
CREATE TABLE alert_history (
	id          bigserial PRIMARY KEY,
	time        timestamptz NOT NULL,
	fingerprint text NOT NULL,
	cluster     text NOT NULL DEFAULT '',
	state       text NOT NULL,
	data        jsonb
);
CREATE INDEX alert_history_cluster ON alert_history (cluster, id);
`},
	{version: 5, name: "timescaledb continuous aggregates", fn: continuousAggregates},
}

// timescale turns the history tables into hypertables when the timescaledb extension
// is installed in the database (CREATE EXTENSION timescaledb, before the first start):
// retention then drops whole chunks. The rollup tables become hypertables too; the step
// of version 5 (continuousAggregates) replaces them by continuous aggregates when
// nothing was rolled up into them yet. Without the extension this step does nothing.
func timescale(ctx context.Context, tx pgx.Tx) error {
	nsp, err := timescaleSchema(ctx, tx)
	if err != nil || nsp == "" {
		return err
	}
	return hypertables(ctx, tx, nsp)
}

// timescaleSchema returns the schema of the timescaledb extension's functions, quoted
// as an identifier, or "" when the extension is not installed. Its functions are
// called by this name: the store's own schema (WithSchema) is all of its search_path.
func timescaleSchema(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (string, error) {
	var nsp string
	err := q.QueryRow(ctx, timescaleSchemaSQL).Scan(&nsp)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return nsp, err
}

// The SQL of the TimescaleDB path, in one place. %s is the extension's schema.
const (
	// regnamespace's text is the name quoted as an identifier where it needs to be.
	timescaleSchemaSQL = `SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'timescaledb'`
	// $1 the table, $2 its chunk interval. No index of TimescaleDB's own on time: the
	// primary key and the BRIN index on time serve the reads of a cluster (every read the
	// daemon makes), the job and retention, as on plain PostgreSQL.
	createHypertableSQL = `SELECT %s.create_hypertable($1::regclass, 'time', chunk_time_interval => $2::interval,
	create_default_indexes => false, migrate_data => true)`
	// $1 the table, $2 the retention's cut.
	dropChunksSQL = `SELECT %s.drop_chunks($1::regclass, older_than => $2::timestamptz)`
	// $1 a continuous aggregate, $2 its chunk interval.
	setChunkSQL = `SELECT %s.set_chunk_time_interval($1::regclass, $2::interval)`
	// $1 a continuous aggregate, [$2, $3) the window to refresh. Not inside a
	// transaction.
	refreshSQL = `CALL %s.refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)`
	// Whether health_1m (in the current schema) is a continuous aggregate.
	isAggregateSQL = `SELECT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates
	WHERE view_schema = current_schema() AND view_name = 'health_1m')`
	// Whether health_raw (in the current schema) is a hypertable.
	isHypertableSQL = `SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
	WHERE hypertable_schema = current_schema() AND hypertable_name = 'health_raw')`
)

// continuousAggregates replaces the rollup tables by TimescaleDB continuous aggregates
// of the same columns when the history tables are hypertables and nothing has been
// rolled up yet (a new database; one that has rollups keeps them, and its rollups stay
// the store's own). The aggregates group by the name set too, so a step whose records
// changed names has a row per set; reads merge them. Each value is the mean weighted
// by the samples each row stands for, computed as the store's own rollup computes it
// (meanSQL: finite whatever finite values it is given), and the maximum; a value only
// some of a step's records have is averaged over those records at every resolution
// (see the package documentation). They are
// refreshed by the store's job (refreshAggregate), not by a policy of TimescaleDB's: the
// job keeps the watermarks the reads, the writer and retention go by.
func continuousAggregates(ctx context.Context, tx pgx.Tx) error {
	nsp, err := timescaleSchema(ctx, tx)
	if err != nil || nsp == "" {
		return err
	}
	var hyper, rolled bool
	if err := tx.QueryRow(ctx, isHypertableSQL).Scan(&hyper); err != nil || !hyper {
		return err
	}
	// A replica of an earlier schema may be rolling up meanwhile: its rollup holds
	// the watermark row and writes the rollup tables until it commits. Decide once it
	// has (the rows it rolled up stay, with the store's own rollups), and hold off the
	// next one until the tables are replaced.
	if _, err := tx.Exec(ctx, `LOCK TABLE rollup_state, health_1m, health_1h, metrics_1m, metrics_1h IN EXCLUSIVE MODE`); err != nil {
		return err
	}
	if err := tx.QueryRow(ctx, rolledUpSQL).Scan(&rolled); err != nil || rolled {
		return err
	}
	if _, err := tx.Exec(ctx, strings.ReplaceAll(aggregatesSQL, "{ts}", nsp)); err != nil {
		return err
	}
	for _, t := range historyTables {
		if t.res == 0 {
			continue
		}
		chunk := "1 day"
		if t.res >= hour {
			chunk = "30 days"
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(setChunkSQL, nsp), t.name, chunk); err != nil {
			return fmt.Errorf("continuous aggregate %s: %w", t.name, err)
		}
	}
	return nil
}

// rolledUpSQL says whether anything was ever rolled up into the rollup tables.
const rolledUpSQL = `SELECT EXISTS (SELECT 1 FROM rollup_state WHERE done_until IS NOT NULL)
	OR EXISTS (SELECT 1 FROM health_1m) OR EXISTS (SELECT 1 FROM health_1h)
	OR EXISTS (SELECT 1 FROM metrics_1m) OR EXISTS (SELECT 1 FROM metrics_1h)`

// aggregatesSQL creates the aggregate functions of the continuous aggregates and the
// aggregates themselves in place of the rollup tables ({ts}: TimescaleDB's schema).
var aggregatesSQL = aggregateFunctionsSQL + continuousAggregatesSQL

// aggregateFunctionsSQL creates history_mean and history_max, the elementwise
// aggregates of value arrays. history_mean's state holds four numbers per value: the
// weighted sum of the values under 2^900, the weighted sum of the larger ones scaled
// by 2^-64, the weight, and whether there were larger ones.
var aggregateFunctionsSQL = strings.NewReplacer("{big}", float8(math.Ldexp(1, 900)), "{scale}", float8(math.Ldexp(1, -64)),
	"{unscale}", float8(math.Ldexp(1, 64)), "{lim}", float8(math.Ldexp(math.MaxFloat64, -64))).Replace(`
CREATE FUNCTION history_mean_step(s float8[], v float8[], w integer) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
DECLARE
	i integer;
	o integer;
	x float8;
BEGIN
	IF v IS NULL OR w IS NULL OR w <= 0 THEN
		RETURN s;
	END IF;
	IF s IS NULL THEN
		s := array_fill(0::float8, ARRAY[4 * cardinality(v)]);
	END IF;
	FOR i IN 1 .. least(cardinality(v), cardinality(s) / 4) LOOP
		x := v[i];
		CONTINUE WHEN x IS NULL;
		o := 4 * (i - 1);
		IF abs(x) < {big} THEN
			s[o + 1] := s[o + 1] + x * w;
		ELSE
			s[o + 2] := s[o + 2] + x * {scale} * w;
			s[o + 4] := 1;
		END IF;
		s[o + 3] := s[o + 3] + w;
	END LOOP;
	RETURN s;
END $f$;
CREATE FUNCTION history_mean_final(s float8[]) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
DECLARE
	i integer;
	o integer;
	m float8;
	r float8[] := '{}';
BEGIN
	IF s IS NULL THEN
		RETURN NULL;
	END IF;
	FOR i IN 1 .. cardinality(s) / 4 LOOP
		o := 4 * (i - 1);
		IF s[o + 3] = 0 THEN
			m := NULL;
		ELSIF s[o + 4] = 1 THEN
			m := greatest(-{lim}, least({lim}, s[o + 1] / s[o + 3] * {scale} + s[o + 2] / s[o + 3])) * {unscale};
		ELSE
			m := s[o + 1] / s[o + 3];
		END IF;
		r := r || m;
	END LOOP;
	RETURN r;
END $f$;
CREATE AGGREGATE history_mean(float8[], integer) (SFUNC = history_mean_step, STYPE = float8[],
	FINALFUNC = history_mean_final, PARALLEL = SAFE);
CREATE FUNCTION history_max_step(s float8[], v float8[]) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
DECLARE
	i integer;
BEGIN
	IF v IS NULL THEN
		RETURN s;
	END IF;
	IF s IS NULL THEN
		RETURN v;
	END IF;
	FOR i IN 1 .. least(cardinality(s), cardinality(v)) LOOP
		IF s[i] IS NULL OR v[i] > s[i] THEN
			s[i] := v[i];
		END IF;
	END LOOP;
	RETURN s;
END $f$;
CREATE AGGREGATE history_max(float8[]) (SFUNC = history_max_step, STYPE = float8[], PARALLEL = SAFE);
`)

const continuousAggregatesSQL = `
DROP TABLE health_1m, health_1h, metrics_1m, metrics_1h;
CREATE MATERIALIZED VIEW health_1m WITH (timescaledb.continuous, timescaledb.materialized_only = true,
	timescaledb.create_group_indexes = false) AS
SELECT cluster, {ts}.time_bucket(interval '1 minute', time) AS time, count(*)::integer AS samples, bool_and(healthy) AS healthy,
	names, history_mean(vals, 1) AS vals, history_max(vals) AS maxs
FROM health_raw GROUP BY cluster, {ts}.time_bucket(interval '1 minute', time), names WITH NO DATA;
CREATE MATERIALIZED VIEW health_1h WITH (timescaledb.continuous, timescaledb.materialized_only = true,
	timescaledb.create_group_indexes = false) AS
SELECT cluster, {ts}.time_bucket(interval '1 hour', time) AS time, sum(samples)::integer AS samples, bool_and(healthy) AS healthy,
	names, history_mean(vals, samples) AS vals, history_max(maxs) AS maxs
FROM health_1m GROUP BY cluster, {ts}.time_bucket(interval '1 hour', time), names WITH NO DATA;
CREATE MATERIALIZED VIEW metrics_1m WITH (timescaledb.continuous, timescaledb.materialized_only = true,
	timescaledb.create_group_indexes = false) AS
SELECT cluster, {ts}.time_bucket(interval '1 minute', time) AS time, member, count(*)::integer AS samples,
	names, history_mean(vals, 1) AS vals, history_max(vals) AS maxs
FROM metrics_raw GROUP BY cluster, {ts}.time_bucket(interval '1 minute', time), member, names WITH NO DATA;
CREATE MATERIALIZED VIEW metrics_1h WITH (timescaledb.continuous, timescaledb.materialized_only = true,
	timescaledb.create_group_indexes = false) AS
SELECT cluster, {ts}.time_bucket(interval '1 hour', time) AS time, member, sum(samples)::integer AS samples,
	names, history_mean(vals, samples) AS vals, history_max(maxs) AS maxs
FROM metrics_1m GROUP BY cluster, {ts}.time_bucket(interval '1 hour', time), member, names WITH NO DATA;
-- The reads of a cluster, as the tables' primary keys serve them.
CREATE INDEX ON health_1m (cluster, time);
CREATE INDEX ON health_1h (cluster, time);
CREATE INDEX ON metrics_1m (cluster, time, member);
CREATE INDEX ON metrics_1h (cluster, time, member);
`

// hypertables makes every history table a hypertable, through the functions of the
// extension in schema nsp: chunks of a day, of 30 days for the hour rollups.
func hypertables(ctx context.Context, tx pgx.Tx, nsp string) error {
	for _, t := range historyTables {
		chunk := "1 day"
		if t.res >= hour {
			chunk = "30 days"
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(createHypertableSQL, nsp), t.name, chunk); err != nil {
			return fmt.Errorf("hypertable %s: %w", t.name, err)
		}
	}
	return nil
}

// migrationLock is the advisory lock key that serialises concurrent starters.
const migrationLock = 0x65746364_6d6f6e31 // "etcdmon1"

// migrate applies the steps not yet recorded in schema_migrations. Concurrent starters
// queue on an advisory lock held for the whole run (schema creation included), so each
// step runs once; a starter
// that finds a version newer than it knows refuses to run against that schema.
//
// The lock is released even when ctx has ended, but within unlockTimeout: on a
// connection whose packets are dropped the release fails then (the server drops the
// lock with the connection) rather than waiting for TCP to give up.
func migrate(ctx context.Context, conn *pgx.Conn, schema string, steps []migration, unlockTimeout time.Duration) (applied int, err error) {
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return 0, fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer func() {
		// A lock the server already dropped (connection lost) is not an error worth
		// more than the one we return.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		_, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
		if err == nil && uerr != nil {
			err = fmt.Errorf("postgres: migration unlock: %w", uerr)
		}
	}()
	// Under the lock: CREATE SCHEMA IF NOT EXISTS is not safe against a concurrent one.
	if schema != "" {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return 0, fmt.Errorf("postgres: create schema %s: %w", schema, err)
		}
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return 0, fmt.Errorf("postgres: schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, fmt.Errorf("postgres: schema_migrations: %w", err)
	}
	if latest := steps[len(steps)-1].version; current > latest {
		return 0, fmt.Errorf("%w: schema version %d is newer than this program's %d", ErrSchema, current, latest)
	}
	for _, m := range steps {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if m.sql != "" {
				if _, err := tx.Exec(ctx, m.sql); err != nil {
					return err
				}
			}
			if m.fn != nil {
				if err := m.fn(ctx, tx); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				return applied, fmt.Errorf("%w: migration %d (%s): %w", ErrSchema, m.version, m.name, err)
			}
			return applied, fmt.Errorf("postgres: migration %d (%s): %w", m.version, m.name, err)
		}
		applied++
	}
	return applied, nil
}
