package monitor

import (
	"context"

	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// historyReader reads health and metric history from a store that keeps it.
type historyReader interface {
	healthHistory(ctx context.Context, cluster string, q HistoryQuery) ([]HealthSummary, error)
	metricsHistory(ctx context.Context, cluster string, q HistoryQuery) ([]*metrics.Snapshot, error)
}

// historyStore returns the store's history when it keeps one.
func (s *Service) historyStore() (historyReader, bool) { return nil, false }
