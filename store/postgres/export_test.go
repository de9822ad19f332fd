package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// FenceCheck runs a fenced view's check in tx, as its writes do first.
func FenceCheck(ctx context.Context, v *Fenced, tx pgx.Tx) error { return v.f.check(ctx, tx) }

// RowsRead returns how many rows history reads fetched.
func RowsRead(s *Store) uint64 { return s.rowsRead.Load() }
