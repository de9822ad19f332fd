package monitor

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// Option configures a Service.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// Defaults, in one place.
const (
	DefaultHealthInterval  = 30 * time.Second
	DefaultMetricsInterval = 10 * time.Second
	// DefaultHistorySize is how many health summaries each cluster keeps.
	DefaultHistorySize = 1000
)

// BenchmarkLimits bound what POST /api/v1/performance/benchmark may ask for, so that a
// request cannot load a production cluster for long or outlive the server's write
// timeout.
type BenchmarkLimits struct {
	// Disabled turns the endpoint off (it answers 403).
	Disabled bool
	// MaxOps caps Config.Ops (default 1,000,000).
	MaxOps int
	// MaxDuration caps Config.Duration (default 20s).
	MaxDuration time.Duration
	// Timeout bounds a whole run, key population included (default 25s, under the
	// daemon's 30s write timeout).
	Timeout time.Duration
	// SLO is what a result is checked against when the request names none
	// (default bench.DefaultSLO()).
	SLO bench.SLO
}

// DefaultBenchmarkLimits returns the defaults of BenchmarkLimits.
func DefaultBenchmarkLimits() BenchmarkLimits {
	return BenchmarkLimits{MaxOps: 1000000, MaxDuration: 20 * time.Second, Timeout: 25 * time.Second, SLO: bench.DefaultSLO()}
}

type options struct {
	healthInterval  time.Duration
	metricsInterval time.Duration
	historySize     int
	alertOpts       []alert.Option
	store           store.Store
	registry        *prometheus.Registry
	benchmark       BenchmarkLimits
	warnings        []string
	heavyRequests   int
	replica         func() ReplicaStatus
	historyGate     func() bool
	storeStats      func() StoreStats
	standby         bool
	maint           maintenanceOptions // maintenance_ops.go
	logger          *zap.Logger
}

func defaults() options {
	return options{
		healthInterval:  DefaultHealthInterval,
		metricsInterval: DefaultMetricsInterval,
		historySize:     DefaultHistorySize,
		benchmark:       DefaultBenchmarkLimits(),
		heavyRequests:   DefaultHeavyRequests,
		logger:          zap.NewNop(),
	}
}

func (o *options) validate() error {
	switch {
	case o.healthInterval <= 0:
		return fmt.Errorf("%w: health interval %v must be positive", ErrInvalidArgument, o.healthInterval)
	case o.metricsInterval <= 0:
		return fmt.Errorf("%w: metrics interval %v must be positive", ErrInvalidArgument, o.metricsInterval)
	case o.historySize < 1:
		return fmt.Errorf("%w: history size %d must be positive", ErrInvalidArgument, o.historySize)
	case o.logger == nil:
		return fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	case o.benchmark.MaxOps < 0 || o.benchmark.MaxDuration < 0 || o.benchmark.Timeout < 0:
		return fmt.Errorf("%w: benchmark limits must not be negative", ErrInvalidArgument)
	case o.standby && o.store == nil:
		return fmt.Errorf("%w: WithStandby needs WithStore: a standby reads alert state from the store", ErrInvalidArgument)
	case o.heavyRequests < 1:
		return fmt.Errorf("%w: WithHeavyRequests: %d must be positive", ErrInvalidArgument, o.heavyRequests)
	}
	return nil
}

// WithHealthInterval sets how often each cluster's health is checked. Default 30s.
func WithHealthInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.healthInterval = d })
}

// WithMetricsInterval sets how often each cluster's metrics are collected. Default 10s.
func WithMetricsInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.metricsInterval = d })
}

// WithHistorySize sets how many health summaries each cluster keeps (metric snapshots
// are kept by the metrics.Collector, alerts by the alert.Manager). Default 1000.
func WithHistorySize(n int) Option { return optionFunc(func(o *options) { o.historySize = n }) }

// WithAlertOptions passes options (configuration, receivers, thresholds, per-cluster
// thresholds) to the Service's alert.Manager, which evaluates every cluster's rules and
// notifies for all of them, so that alerts of several clusters are grouped, routed,
// inhibited and silenced together.
func WithAlertOptions(opts ...alert.Option) Option {
	return optionFunc(func(o *options) { o.alertOpts = append(o.alertOpts, opts...) })
}

// WithStore keeps the Service's durable state in s: alert state, the notification log
// and silences (through the alert.Manager) and benchmark results, so that a restart
// neither re-sends what was sent nor forgets a resolve. s stays the caller's to close,
// after Close. Default: state lives in memory and is lost at exit.
func WithStore(s store.Store) Option { return optionFunc(func(o *options) { o.store = s }) }

// WithRegistry sets the Prometheus registry /metrics serves and the Service registers
// its collectors with. Default: a new registry of its own with the Go and process
// collectors; the global registry is never used.
func WithRegistry(r *prometheus.Registry) Option {
	return optionFunc(func(o *options) { o.registry = r })
}

// WithBenchmarkLimits bounds the benchmark endpoint. Default DefaultBenchmarkLimits().
// Zero fields take their defaults, except SLO, which is used as given when any of its
// objectives is set.
func WithBenchmarkLimits(l BenchmarkLimits) Option {
	return optionFunc(func(o *options) {
		d := DefaultBenchmarkLimits()
		if l.MaxOps == 0 {
			l.MaxOps = d.MaxOps
		}
		if l.MaxDuration == 0 {
			l.MaxDuration = d.MaxDuration
		}
		if l.Timeout == 0 {
			l.Timeout = d.Timeout
		}
		if l.SLO == (bench.SLO{}) {
			l.SLO = d.SLO
		}
		o.benchmark = l
	})
}

// WithWarnings adds lines that GET /health reports under "warnings", for settings an
// operator should know are unsafe (a daemon that accepts writes without authentication).
func WithWarnings(msgs ...string) Option {
	return optionFunc(func(o *options) { o.warnings = append(o.warnings, msgs...) })
}

// WithLogger sets the logger. Default zap.NewNop().
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithHeavyRequests bounds how many history requests (metrics, latency and health
// history: up to 1000 entries each) the API answers at once; more are refused with 429
// and Retry-After, so that a burst of them cannot exhaust memory. Default
// DefaultHeavyRequests.
func WithHeavyRequests(n int) Option { return optionFunc(func(o *options) { o.heavyRequests = n }) }

// WithReplica makes GET /health name this replica and the active one, for daemons that
// share a store and elect one of them to notify. fn is called on every /health request
// and must not block.
func WithReplica(fn func() ReplicaStatus) Option {
	return optionFunc(func(o *options) { o.replica = fn })
}

// WithHistoryGate makes the Service write health and metric history to its store only
// while fn returns true: replicas sharing a store let one write, so that no point is
// doubled. fn is checked for each record when it is made and must not block; a record
// made while it is false is neither queued nor counted. The daemon opens it on the
// replica that last held the lease as far as it knows, through a store outage too (so
// the store queues the records), and closes it on a replica that knows another holds
// the lease. When the gate opens (and for a cluster's first record), the records in
// memory newer than the store's newest are written first, so the time since the last
// writer's last record is no gap. Default: always write (with a store).
func WithHistoryGate(fn func() bool) Option {
	return optionFunc(func(o *options) { o.historyGate = fn })
}

// WithStoreStats exports the store's own counts (PostgreSQL's errors, dropped history
// records, queue length) on /metrics, read from fn at scrape time; fn must not block.
// They are added to the Service's own, which are exported with any store: history
// writes that failed, the records they lost, and the records waiting to be written.
func WithStoreStats(fn func() StoreStats) Option {
	return optionFunc(func(o *options) { o.storeStats = fn })
}
