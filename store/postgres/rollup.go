package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// jobLoop runs Maintain every job interval until Close.
func (s *Store) jobLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.jobInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.bg, max(s.opts.jobInterval, 10*s.opts.opTimeout))
		err := s.Maintain(ctx, time.Now())
		cancel()
		if err != nil && !s.closed.Load() {
			s.errors.Add(1)
			s.log.Warn("history rollup and retention", zap.Error(err))
		}
	}
}

// Maintain rolls raw history up into 1-minute rollups and those into 1-hour rollups as
// far as complete steps before now allow, then deletes what is older than the
// retention at now (raw data and 1-minute rollups only once rolled up) and the
// notification log beyond its bound. The background job calls it every job interval;
// several processes on one database may run it at once (the rollup state rows are
// locked while a rollup runs). Large backlogs are rolled up in chunks, each in its own
// transaction, so an interrupted run keeps what it did.
func (s *Store) Maintain(ctx context.Context, now time.Time) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	var errs []error
	for _, kind := range []string{"health", "metrics"} {
		lv := levels(kind)
		if err := s.rollup(ctx, lv[0], lv[1], now); err != nil {
			errs = append(errs, fmt.Errorf("rollup %s: %w", lv[1].name, err))
			continue
		}
		if err := s.rollup(ctx, lv[1], lv[2], now); err != nil {
			errs = append(errs, fmt.Errorf("rollup %s: %w", lv[2].name, err))
			continue
		}
		if err := s.retain(ctx, kind, now); err != nil {
			errs = append(errs, fmt.Errorf("retention %s: %w", kind, err))
		}
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM notifications WHERE id <= (SELECT max(id) FROM notifications) - $1`,
		s.opts.maxNotifications); err != nil {
		errs = append(errs, fmt.Errorf("notification log bound: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres: maintain: %w", err)
	}
	return nil
}

// rollup aggregates src into dst from dst's watermark to the last complete step
// (for the hour rollup: the last hour the minute rollup completed), chunk by chunk.
func (s *Store) rollup(ctx context.Context, src, dst table, now time.Time) error {
	chunk := 6 * time.Hour
	if dst.res == hour {
		chunk = 7 * 24 * time.Hour
	}
	sql := rollupSQL(src, dst)
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
			if !from.Before(end) {
				return nil
			}
			to := from.Add(chunk)
			if to.After(end) {
				to = end
			}
			more = to.Before(end)
			if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE time >= $1 AND time < $2`, dst.name), *from, to); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, sql, *from, to, dst.res); err != nil {
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

func binStart(t time.Time, res time.Duration) time.Time {
	ns := t.UnixNano()
	return time.Unix(0, ns-((ns%int64(res))+int64(res))%int64(res)).UTC()
}

// rollupSQL aggregates src rows of [$1, $2) into dst steps of $3: per step the number
// of samples, whether all were healthy, and per value name the mean weighted by the
// samples each row stands for and the maximum.
func rollupSQL(src, dst table) string {
	keys, gkeys := "cluster", "g.cluster"
	if src.kind == "metrics" {
		keys, gkeys = "cluster, member", "g.cluster, g.member"
	}
	weight, mx, healthy := "1", "NULL::jsonb", "true"
	if src.res > 0 {
		weight, mx = "samples", `"max"`
	}
	if src.kind == "health" {
		healthy = "healthy"
	}
	cols, gcols := keys+", time, samples, ", gkeys+", g.b, g.samples, "
	if src.kind == "health" {
		cols += "healthy, "
		gcols += "g.healthy, "
	}
	return strings.NewReplacer("{keys}", keys, "{gkeys}", gkeys, "{w}", weight, "{mx}", mx, "{healthy}", healthy,
		"{src}", src.name, "{dst}", dst.name, "{cols}", cols, "{gcols}", gcols).Replace(`
WITH src AS (
	SELECT {keys}, date_bin($3::interval, time, timestamptz 'epoch') AS b, {w} AS w, {healthy} AS healthy,
		"values" AS v, {mx} AS mx
	FROM {src} WHERE time >= $1 AND time < $2
), g AS (
	SELECT {keys}, b, sum(w)::integer AS samples, bool_and(healthy) AS healthy FROM src GROUP BY {keys}, b
), kv AS (
	SELECT {keys}, b, e.key, sum(e.value::float8 * w) / sum(w) AS mean,
		max(coalesce((mx -> e.key)::float8, e.value::float8)) AS top
	FROM src CROSS JOIN LATERAL jsonb_each(src.v) e GROUP BY {keys}, b, e.key
)
INSERT INTO {dst} ({cols}"values", "max")
SELECT {gcols}jsonb_object_agg(kv.key, kv.mean) FILTER (WHERE kv.key IS NOT NULL),
	jsonb_object_agg(kv.key, kv.top) FILTER (WHERE kv.key IS NOT NULL)
FROM g LEFT JOIN kv USING ({keys}, b)
GROUP BY {gcols}g.b`)
}

// retain deletes what kind keeps beyond its retention at now: raw rows and minute
// rollups only once the next level has rolled them up. With TimescaleDB, whole chunks
// are dropped first.
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
		if s.timescale {
			if _, err := s.pool.Exec(ctx, `SELECT drop_chunks($1::regclass, older_than => $2::timestamptz)`, d.table, cut); err != nil {
				return err
			}
		}
		if _, err := s.pool.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE time < $1`, d.table), cut); err != nil {
			return err
		}
	}
	return nil
}
