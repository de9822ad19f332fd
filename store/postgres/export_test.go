package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// FenceCheck runs a fenced view's check in tx, as its writes do first.
func FenceCheck(ctx context.Context, v *Fenced, tx pgx.Tx) error { return v.f.check(ctx, tx) }
