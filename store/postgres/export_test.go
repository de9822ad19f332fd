package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
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
