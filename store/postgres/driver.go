package postgres

import (
	"context"

	"github.com/etcd-monitor/etcd-monitor/store"
)

func init() { store.Register(store.TypePostgres, openConfig) }

// openConfig is the store.Driver of type postgres.
func openConfig(ctx context.Context, dsn string, cfg store.Config) (store.Store, error) {
	opts := []Option{WithRetention(cfg.Retention)}
	if cfg.Logger != nil {
		opts = append(opts, WithLogger(cfg.Logger))
	}
	if cfg.Schema != "" {
		opts = append(opts, WithSchema(cfg.Schema))
	}
	if cfg.QueueSize > 0 {
		opts = append(opts, WithQueueSize(cfg.QueueSize))
	}
	if cfg.QueueBytes > 0 {
		opts = append(opts, WithQueueBytes(cfg.QueueBytes))
	}
	s, err := Open(ctx, dsn, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}
