package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// jobLoop runs Maintain every job interval until Close, at PostgreSQL's time: every
// replica then agrees on which steps are complete and what the retention deletes,
// whatever its own clock says (a skew of a minute or more is logged).
func (s *Store) jobLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.jobInterval)
	defer t.Stop()
	skewed := false
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.bg, max(s.opts.jobInterval, 10*s.opts.opTimeout))
		local := s.daemonNow()
		now, err := s.serverNow(ctx)
		if err == nil {
			skew := local.Sub(now)
			if off := skew.Abs() >= time.Minute; off != skewed {
				skewed = off
				if off {
					s.log.Warn("this clock is off from PostgreSQL's: history times (taken here) disagree with rollups and retention (taken there)",
						zap.Duration("ahead_by", skew))
				} else {
					s.log.Info("this clock agrees with PostgreSQL's again", zap.Duration("ahead_by", skew))
				}
			}
			err = s.Maintain(ctx, now)
		}
		cancel()
		s.jobRuns.Add(1)
		if err != nil && !s.closed.Load() {
			s.errors.Add(1)
			s.log.Warn("history rollup and retention", zap.Error(err))
		}
	}
}

// Maintain rolls raw history up into 1-minute rollups and those into 1-hour rollups
// (with TimescaleDB's continuous aggregates: refreshes them) as far as complete steps
// before now allow, then deletes what is older than the
// retention at now (raw data and 1-minute rollups only once rolled up) and the
// notification log beyond its bound, and gathers the planner's statistics of the
// history tables that have none (see analyze). A zero now is PostgreSQL's clock, as the
// background job uses: it calls Maintain every job interval;
// several processes on one database may run it at once (the rollup state rows are
// locked while a rollup runs). Large backlogs are rolled up in chunks, each in its own
// transaction, so an interrupted run keeps what it did.
func (s *Store) Maintain(ctx context.Context, now time.Time) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if now.IsZero() {
		var err error
		if now, err = s.serverNow(ctx); err != nil {
			return fmt.Errorf("postgres: maintain: %w", err)
		}
	}
	var errs []error
	for _, kind := range []string{"health", "metrics"} {
		// A kind's rollups get a third of the time left, so a long backlog leaves time
		// for the other kind, the retention and the bounds; retention runs whatever the
		// rollups did (it deletes only what they completed).
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if d, ok := ctx.Deadline(); ok {
			rctx, cancel = context.WithTimeout(ctx, time.Until(d)/3)
		}
		lv := levels(kind)
		if err := s.rollup(rctx, lv[0], lv[1], now); err != nil {
			errs = append(errs, fmt.Errorf("rollup %s: %w", lv[1].name, err))
		}
		if err := s.rollup(rctx, lv[1], lv[2], now); err != nil {
			errs = append(errs, fmt.Errorf("rollup %s: %w", lv[2].name, err))
		}
		cancel()
		if err := s.retain(ctx, kind, now); err != nil {
			errs = append(errs, fmt.Errorf("retention %s: %w", kind, err))
		}
	}
	if err := s.analyze(ctx); err != nil {
		errs = append(errs, fmt.Errorf("statistics: %w", err))
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM notifications WHERE id <= (SELECT max(id) FROM notifications) - $1`,
		s.opts.maxNotifications); err != nil {
		errs = append(errs, fmt.Errorf("notification log bound: %w", err))
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM alert_history WHERE id <= (SELECT max(id) FROM alert_history) - $1`,
		s.opts.maxNotifications); err != nil {
		errs = append(errs, fmt.Errorf("alert history bound: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres: maintain: %w", err)
	}
	return nil
}

// rollup aggregates src into dst from dst's watermark to the last complete step
// (for the hour rollup: the last hour the minute rollup completed), chunk by chunk, each
// in a transaction that holds dst's watermark row: by this package's SQL
// (storeRollup), or by a refresh of the continuous aggregate dst (refreshAggregate).
// It starts no earlier than the hour retention at now (older rows are deleted, not
// rolled up), and an empty chunk jumps to the step of the next row: a record stamped
// long ago (a clock at 1970 before NTP synced) or a long gap costs no walk through the
// empty hours.
func (s *Store) rollup(ctx context.Context, src, dst table, now time.Time) error {
	oldest := binStart(now.Add(-s.opts.retention.Hour), dst.res)
	// A chunk is one transaction; the job's deadline must fit one, even on a loaded
	// server (a day of 20 clusters x 4 series of raw metrics took 150 s to roll up on a
	// shared 2-core machine: an hour takes about 6 s).
	chunk := time.Hour
	if dst.res == hour {
		chunk = 24 * time.Hour
	}
	materialize := s.storeRollup(src, dst)
	if nsp := s.caggs.Load(); nsp != nil {
		var done func()
		materialize, done = s.refreshAggregate(*nsp, dst)
		defer done()
	}
	for {
		more := false
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var from *time.Time
			if err := tx.QueryRow(ctx, `SELECT done_until FROM rollup_state WHERE name = $1 FOR UPDATE`, dst.name).Scan(&from); err != nil {
				return err
			}
			var upper *time.Time
			if src.res == 0 {
				u := now
				upper = &u
			} else if err := tx.QueryRow(ctx, `SELECT done_until FROM rollup_state WHERE name = $1`, src.name).Scan(&upper); err != nil {
				return err
			}
			if upper == nil {
				return nil
			}
			end := binStart(*upper, dst.res)
			if from == nil {
				var first *time.Time
				if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT min(time) FROM %s`, src.name)).Scan(&first); err != nil {
					return err
				}
				if first == nil {
					return nil
				}
				f := binStart(*first, dst.res)
				from = &f
			}
			if from.Before(oldest) {
				from = &oldest
			}
			if !from.Before(end) {
				return nil
			}
			start := *from
			to := start.Add(chunk)
			if to.After(end) {
				to = end
			}
			var some bool
			if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE time >= $1 AND time < $2)`, src.name),
				start, to).Scan(&some); err != nil {
				return err
			}
			if !some {
				// Read the rest of the range only when this chunk is empty (a gap).
				var next *time.Time
				if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT min(time) FROM %s WHERE time >= $1 AND time < $2`, src.name),
					to, end).Scan(&next); err != nil {
					return err
				}
				start = end
				if next != nil {
					start = binStart(*next, dst.res)
				}
				if to = start.Add(chunk); to.After(end) {
					to = end
				}
			}
			more = to.Before(end)
			if err := materialize(ctx, tx, *from, start, to); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE rollup_state SET done_until = $2 WHERE name = $1`, dst.name, to)
			return err
		})
		if err != nil || !more {
			return err
		}
	}
}

// A materializer makes dst's rows of [from, to) from its source, within the rollup's
// transaction tx (which holds dst's rollup_state row). Source rows are in [start, to)
// only: [from, start) is a gap.
type materializer func(ctx context.Context, tx pgx.Tx, from, start, to time.Time) error

// storeRollup materializes dst from src with this package's own SQL, in tx.
func (s *Store) storeRollup(src, dst table) materializer {
	sql, insert := rollupSQL(src), rollupInsert(dst)
	return func(ctx context.Context, tx pgx.Tx, from, start, to time.Time) error {
		// Steps skipped as empty have no rollups either.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE time >= $1 AND time < $2`, dst.name), from, to); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sql, start, to, dst.res); err != nil {
			return err
		}
		for _, stmt := range insert {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	}
}

// refreshAggregate materializes the continuous aggregate dst by TimescaleDB's refresh
// (nsp: the schema of its functions); done releases what it took. A refresh cannot run
// inside a transaction, so it runs on another connection (see refreshConn), taken at
// the first refresh, while tx holds dst's rollup_state row: writers of dst's kind wait
// for it as they wait for the store's own rollup, and a row they committed before is
// in it. The whole of [from, to) is refreshed, gap included, so the rows of a step
// whose source rows are gone go too. tx is idle meanwhile: its session's
// idle_in_transaction_session_timeout (the operation timeout) is raised to what is
// left of ctx (see refreshIdleTimeout), or PostgreSQL would end it, and the
// watermark's update with it, under every refresh that takes longer than an
// operation.
func (s *Store) refreshAggregate(nsp string, dst table) (m materializer, done func()) {
	call := fmt.Sprintf(refreshSQL, nsp)
	var conn *pgx.Conn
	release := func() {}
	m = func(ctx context.Context, tx pgx.Tx, from, _, to time.Time) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('`+idleInTx+`', $1, true)`,
			strconv.FormatInt(max(s.refreshIdleTimeout(ctx).Milliseconds(), 1), 10)); err != nil {
			return err
		}
		if conn == nil || conn.IsClosed() {
			release()
			var err error
			if conn, release, err = s.refreshConn(ctx); err != nil {
				conn, release = nil, func() {}
				return err
			}
		}
		_, err := conn.Exec(ctx, call, dst.name, from, to)
		return err
	}
	return m, func() { release() }
}

// refreshConn returns a connection for a refresh and its release: an idle one of the
// pool when there is one (taken without waiting), else one of its own. A refresh must
// not wait for the pool: the transaction holding the watermark row has one of its
// connections (all of them in a pool of one), and the writer, waiting for the row,
// may hold another, so it would wait until the job's deadline, on every run. Only
// when no connection can be opened (the server has none left) does it wait for the
// pool's.
func (s *Store) refreshConn(ctx context.Context) (*pgx.Conn, func(), error) {
	if idle := s.pool.AcquireAllIdle(ctx); len(idle) > 0 {
		for _, c := range idle[1:] {
			c.Release()
		}
		return idle[0].Conn(), idle[0].Release, nil
	}
	c, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err == nil {
		return c, func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.opTimeout)
			defer cancel()
			_ = c.Close(ctx)
		}, nil
	}
	pc, perr := s.pool.Acquire(ctx)
	if perr != nil {
		return nil, nil, fmt.Errorf("connection for the refresh: %w", errors.Join(err, perr))
	}
	return pc.Conn(), pc.Release, nil
}

// refreshIdleTimeout is how long the transaction holding a watermark row may stay idle
// while a refresh runs: until ctx ends (ten operation timeouts when it sets no end, as
// the job's deadline is), and an operation timeout more, so that the server ends the
// session of a process that froze holding the row soon after its own deadline; at
// least a millisecond (0 turns the timeout off) and at most what the setting takes
// (2^31-1 ms, 24 days).
func (s *Store) refreshIdleTimeout(ctx context.Context) time.Duration {
	left := 10 * s.opts.opTimeout
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	const most = math.MaxInt32 * time.Millisecond
	return min(max(left, 0), most-s.opts.opTimeout) + s.opts.opTimeout
}

// serverNow reads PostgreSQL's clock.
func (s *Store) serverNow(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now)
	return now.UTC(), err
}

// binStart is the start of t's step of res, counted from the Unix epoch as
// PostgreSQL's date_bin does here.
func binStart(t time.Time, res time.Duration) time.Time { return store.StepStart(t, res) }

// rollupSQL aggregates src rows of [$1, $2) into steps of $3 and leaves them in the
// temporary table rollup_steps: per step the number of samples, whether all were
// healthy, and per value name (sorted) the mean weighted by the samples each row
// stands for, and the maximum.
func rollupSQL(src table) string {
	keys := "r.cluster"
	if src.kind == "metrics" {
		keys = "r.cluster, r.member"
	}
	weight, mx, healthy := "1", "NULL::float8[]", "true"
	if src.res > 0 {
		weight, mx = "r.samples", "r.maxs"
	}
	if src.kind == "health" {
		healthy = "r.healthy"
	}
	plain := strings.ReplaceAll(keys, "r.", "")
	return strings.NewReplacer("{keys}", keys, "{plain}", plain, "{w}", weight, "{mx}", mx, "{healthy}", healthy,
		"{src}", src.name, "{mean}", meanSQL).Replace(`
CREATE TEMPORARY TABLE rollup_steps ON COMMIT DROP AS
WITH s AS (
	SELECT {keys}, date_bin($3::interval, r.time, timestamptz 'epoch') AS b, {w} AS w, {healthy} AS healthy,
		n.names AS nm, r.vals, {mx} AS mx
	FROM {src} r LEFT JOIN value_names n ON n.id = r.names
	WHERE r.time >= $1 AND r.time < $2
), g AS (
	SELECT {plain}, b, sum(w)::integer AS samples, bool_and(healthy) AS healthy FROM s GROUP BY {plain}, b
), kv AS (
	SELECT {plain}, b, e.key, {mean} AS mean, max(coalesce(e.mx, e.val)) AS top
	FROM s CROSS JOIN LATERAL unnest(s.nm, s.vals, s.mx) AS e(key, val, mx)
	WHERE e.key IS NOT NULL AND e.val IS NOT NULL
	GROUP BY {plain}, b, e.key
), k AS (
	SELECT {plain}, b, array_agg(key ORDER BY key) AS nm, array_agg(mean ORDER BY key) AS means,
		array_agg(top ORDER BY key) AS tops
	FROM kv GROUP BY {plain}, b
)
SELECT g.*, k.nm, k.means, k.tops FROM g LEFT JOIN k USING ({plain}, b)`)
}

// meanSQL is the weighted mean of e.val (weight w) over a group, finite and without
// overflow whatever finite values it is given: float8 sums raise an error past
// 1.8e308, which would stop the rollup at that step on every run. Values under 2^900
// are summed as they are (their weighted sum stays far below the limit: a step's
// weight fits an integer); larger ones are summed scaled by 2^-64, and only when there
// are any is the mean taken at that scale, clamped, and scaled back (exactly: powers
// of two). The mean is then at most the largest value.
var meanSQL = func() string {
	return fmt.Sprintf(`CASE WHEN bool_or(abs(e.val) >= %[1]s) THEN
		greatest(-%[4]s, least(%[4]s,
			coalesce(sum(e.val * w) FILTER (WHERE abs(e.val) < %[1]s), 0) / sum(w) * %[2]s
			+ sum(e.val * %[2]s * w) FILTER (WHERE abs(e.val) >= %[1]s) / sum(w))) * %[3]s
	ELSE sum(e.val * w) FILTER (WHERE abs(e.val) < %[1]s) / sum(w) END`,
		float8(math.Ldexp(1, 900)), float8(math.Ldexp(1, -64)), float8(math.Ldexp(1, 64)),
		float8(math.Ldexp(math.MaxFloat64, -64)))
}()

// float8 is f as a float8 literal that reads back exactly.
func float8(f float64) string {
	return "'" + strconv.FormatFloat(f, 'g', -1, 64) + "'::float8"
}

// rollupInsert moves rollup_steps into dst, with the dictionary ids of their name sets
// (added first when new).
func rollupInsert(dst table) []string {
	keys := "t.cluster"
	cols := "cluster, time, samples, "
	if dst.kind == "metrics" {
		keys = "t.cluster, t.member"
		cols = "cluster, member, time, samples, "
	}
	healthy := ""
	if dst.kind == "health" {
		healthy = "t.healthy, "
		cols += "healthy, "
	}
	return []string{
		`INSERT INTO value_names (names) SELECT DISTINCT nm FROM rollup_steps WHERE nm IS NOT NULL ON CONFLICT (names) DO NOTHING`,
		fmt.Sprintf(`INSERT INTO %s (%snames, vals, maxs)
SELECT %s, t.b, t.samples, %sn.id, t.means, t.tops FROM rollup_steps t LEFT JOIN value_names n ON n.names = t.nm`,
			dst.name, cols, keys, healthy),
	}
}

// retain deletes what kind keeps beyond its retention at now: raw rows and minute
// rollups only once the next level has rolled them up. With TimescaleDB, whole chunks
// are dropped first; with its continuous aggregates, only whole chunks.
func (s *Store) retain(ctx context.Context, kind string, now time.Time) error {
	r := s.opts.retention
	for _, d := range []struct {
		table, next string
		cut         time.Time
	}{
		{kind + "_raw", kind + "_1m", now.Add(-r.Raw)},
		{kind + "_1m", kind + "_1h", now.Add(-r.Minute)},
		{kind + "_1h", "", now.Add(-r.Hour)},
	} {
		cut := d.cut
		if d.next != "" {
			var done *time.Time
			if err := s.pool.QueryRow(ctx, `SELECT done_until FROM rollup_state WHERE name = $1`, d.next).Scan(&done); err != nil {
				return err
			}
			if done == nil {
				continue
			}
			if done.Before(cut) {
				cut = *done
			}
		}
		if nsp := s.timescale.Load(); nsp != nil {
			if _, err := s.pool.Exec(ctx, fmt.Sprintf(dropChunksSQL, *nsp), d.table, cut); err != nil {
				return err
			}
		}
		if s.caggs.Load() != nil {
			// Whole chunks only: every deletion below the aggregates' refreshes stays
			// in TimescaleDB's invalidation log for good (a row deleted each run would
			// grow it by an entry a run, a dropped chunk by one a day). Reads bound
			// each table to its part, so the rest of a chunk is never read.
			continue
		}
		if _, err := s.pool.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE time < $1`, d.table), cut); err != nil {
			return err
		}
	}
	return nil
}

// analyze gathers the planner's statistics of the history tables that have none: a
// table is analyzed by autovacuum only once it has been written to for a while (a
// minute or more), and without statistics PostgreSQL takes a cluster's rows for a
// handful, so it reads the newest records of a day by fetching every raw row of the
// day and sorting them (2 ms of the server's CPU per read with a day of one cluster's
// checks, against 0.1 ms backwards on the primary key). Tables with statistics are
// left to autovacuum; an empty table gets none and is analyzed again, which costs
// nothing. A table another session is analyzing or vacuuming is skipped. With
// TimescaleDB the statistics are the chunks': those of the history hypertables and
// of the continuous aggregates' (a read of the newest records without them read
// every row of a month of minutes).
func (s *Store) analyze(ctx context.Context) error {
	var names []string
	for _, t := range historyTables {
		names = append(names, t.name)
	}
	sql := `SELECT quote_ident(t) FROM unnest($1::text[]) t
WHERE NOT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = current_schema() AND tablename = t)`
	if s.Timescale() {
		sql = chunksWithoutStatsSQL
	}
	var missing []string
	rows, err := s.pool.Query(ctx, sql, names)
	if err == nil {
		missing, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42P01" {
		// No catalog of TimescaleDB's to list chunks by (its functions' stand-ins,
		// in TestTimescaleSQL): nothing to analyze.
		return nil
	}
	if err != nil || len(missing) == 0 {
		return err
	}
	_, err = s.pool.Exec(ctx, "ANALYZE (SKIP_LOCKED) "+strings.Join(missing, ", "))
	return err
}

// chunksWithoutStatsSQL lists (quoted) the chunks without statistics of the history
// hypertables named $1 in the current schema and of the continuous aggregates there.
const chunksWithoutStatsSQL = `WITH h AS (
	SELECT current_schema()::name AS s, t::name AS n FROM unnest($1::text[]) t
	UNION ALL
	SELECT materialization_hypertable_schema, materialization_hypertable_name
	FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema()
)
SELECT format('%I.%I', c.chunk_schema, c.chunk_name) FROM timescaledb_information.chunks c
JOIN h ON c.hypertable_schema = h.s AND c.hypertable_name = h.n
WHERE NOT EXISTS (SELECT 1 FROM pg_stats p WHERE p.schemaname = c.chunk_schema AND p.tablename = c.chunk_name)`
