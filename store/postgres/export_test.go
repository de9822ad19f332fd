package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// FenceCheck runs a fenced view's check in tx, as its writes do first.
func FenceCheck(ctx context.Context, v *Fenced, tx pgx.Tx) error { return v.f.check(ctx, tx) }

// SetDaemonClock replaces the store's wall clock, as a daemon whose clock is off
// would have it.
func SetDaemonClock(s *Store, now func() time.Time) { s.clock.Store(&now) }

// JobRuns returns how many times the background job ran.
func JobRuns(s *Store) uint64 { return s.jobRuns.Load() }

// RowsRead returns how many rows history reads fetched.
func RowsRead(s *Store) uint64 { return s.rowsRead.Load() }

// HistoryPlan runs the query a history read without a step or with one would run for
// q under EXPLAIN ANALYZE, and returns the plan as JSON.
func HistoryPlan(ctx context.Context, s *Store, kind string, q store.HistoryQuery) ([]byte, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	wm, now, err := s.watermarks(ctx, tx, kind)
	if err != nil {
		return nil, err
	}
	sql, args := s.historySQL(kind, q, q.Since, wm, now)
	var plan []byte
	err = tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args...).Scan(&plan)
	return plan, err
}

// Retain runs the job's retention of kind at now, without its rollups.
func Retain(ctx context.Context, s *Store, kind string, now time.Time) error {
	return s.retain(ctx, kind, now)
}

// MakeHypertables runs what the migration runs when TimescaleDB is installed, with the
// functions of the store's own schema (stand-ins).
func MakeHypertables(ctx context.Context, s *Store) error {
	nsp := pgx.Identifier{s.opts.schema}.Sanitize()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return hypertables(ctx, tx, nsp) })
}

// SetTimescale makes the store take its history tables for hypertables, with
// TimescaleDB's functions in the store's own schema (stand-ins), or not.
func SetTimescale(s *Store, on bool) {
	if !on {
		s.timescale.Store(nil)
		return
	}
	nsp := pgx.Identifier{s.opts.schema}.Sanitize()
	s.timescale.Store(&nsp)
}

// QueuePastClosedCheck queues checks as PutHealthChecks does once it found the store
// open: what a Put does that raced with Close.
func QueuePastClosedCheck(s *Store, checks []store.HealthCheck) error {
	rs := make([]record, 0, len(checks))
	for i, h := range checks {
		r, err := encode(true, h.Time, h.Cluster, "", h.Healthy, h.Values, h.Data, i)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	return s.enqueue(rs)
}

// WithSchemaVersion applies the schema's steps only up to version, as an earlier
// release of this package did.
func WithSchemaVersion(version int) Option {
	return optionFunc(func(o *options) {
		o.migrations = slices.DeleteFunc(slices.Clone(migrations), func(m migration) bool { return m.version > version })
	})
}

// AggregateFunctionsSQL creates the aggregate functions of the continuous aggregates
// (plain SQL: no TimescaleDB needed).
var AggregateFunctionsSQL = aggregateFunctionsSQL

// SchemaVersion is the version of the schema's last step.
var SchemaVersion = migrations[len(migrations)-1].version
