package postgres

import (
	"fmt"
	"regexp"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// Option configures Open.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// Retention says how long history is kept at each resolution: Raw (default 24h),
// Minute for 1-minute rollups (default 30 days), Hour for 1-hour rollups (default 365
// days).
type Retention = store.Retention

// Defaults, in one place.
const (
	DefaultRawRetention    = 24 * time.Hour
	DefaultMinuteRetention = 30 * 24 * time.Hour
	DefaultHourRetention   = 365 * 24 * time.Hour
	// DefaultQueueSize bounds the history records waiting to be written.
	DefaultQueueSize = 10000
	// DefaultQueueBytes bounds the memory they hold: a metric record carries its
	// cluster's snapshot as JSON, several KB with many members, so during an outage
	// the record bound alone could hold tens of MB.
	DefaultQueueBytes = 8 << 20
	// DefaultOpTimeout bounds each synchronous operation (and each history batch).
	DefaultOpTimeout = 5 * time.Second
	// DefaultJobInterval is how often rollups and retention run.
	DefaultJobInterval = time.Minute
	// DefaultMaxNotifications bounds the notification log.
	DefaultMaxNotifications = 10000
	// DefaultMaxConns is the least size of the connection pool when the DSN does not
	// set pool_max_conns.
	DefaultMaxConns = 16
)

// DefaultRetention returns the default retention.
func DefaultRetention() Retention {
	return Retention{Raw: DefaultRawRetention, Minute: DefaultMinuteRetention, Hour: DefaultHourRetention}
}

type options struct {
	logger           *zap.Logger
	schema           string
	retention        Retention
	queueSize        int
	queueBytes       int64
	opTimeout        time.Duration
	jobInterval      time.Duration
	maxNotifications int
	// migrations are the schema's steps to apply (all of them but in tests of an
	// upgrade).
	migrations []migration
}

func defaults() options {
	return options{logger: zap.NewNop(), retention: DefaultRetention(), queueSize: DefaultQueueSize, queueBytes: DefaultQueueBytes,
		opTimeout: DefaultOpTimeout, jobInterval: DefaultJobInterval, maxNotifications: DefaultMaxNotifications,
		migrations: migrations}
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func apply(opts []Option) (options, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	r := o.retention
	switch {
	case o.logger == nil:
		return o, fmt.Errorf("%w: nil logger", ErrInvalidArgument)
	case o.schema != "" && !schemaName.MatchString(o.schema):
		return o, fmt.Errorf("%w: schema %q: want lower-case letters, digits and _", ErrInvalidArgument, o.schema)
	case r.Raw < time.Minute:
		return o, fmt.Errorf("%w: raw retention %v is under a minute", ErrInvalidArgument, r.Raw)
	case r.Minute < r.Raw || r.Minute < time.Hour:
		return o, fmt.Errorf("%w: minute retention %v is under an hour or the raw retention %v", ErrInvalidArgument, r.Minute, r.Raw)
	case r.Hour < r.Minute:
		return o, fmt.Errorf("%w: hour retention %v is under the minute retention %v", ErrInvalidArgument, r.Hour, r.Minute)
	case o.queueSize < 1:
		return o, fmt.Errorf("%w: queue size %d must be at least 1", ErrInvalidArgument, o.queueSize)
	case o.queueBytes < 1<<10:
		return o, fmt.Errorf("%w: queue bytes %d must be at least 1024", ErrInvalidArgument, o.queueBytes)
	case o.opTimeout <= 0:
		return o, fmt.Errorf("%w: operation timeout %v must be positive", ErrInvalidArgument, o.opTimeout)
	case o.jobInterval <= 0:
		return o, fmt.Errorf("%w: job interval %v must be positive", ErrInvalidArgument, o.jobInterval)
	case o.maxNotifications < 1:
		return o, fmt.Errorf("%w: max notifications %d must be at least 1", ErrInvalidArgument, o.maxNotifications)
	}
	return o, nil
}

// WithLogger sets the logger. Default: none.
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithSchema keeps every table in the named schema (created when missing) instead of
// the DSN's search path. Default: the search path.
func WithSchema(name string) Option { return optionFunc(func(o *options) { o.schema = name }) }

// WithRetention sets how long history is kept at each resolution; zero fields keep
// their defaults. Raw must be at least a minute, Minute at least an hour and Raw, Hour
// at least Minute. Default DefaultRetention().
func WithRetention(r Retention) Option {
	return optionFunc(func(o *options) {
		d := DefaultRetention()
		if r.Raw == 0 {
			r.Raw = d.Raw
		}
		if r.Minute == 0 {
			r.Minute = d.Minute
		}
		if r.Hour == 0 {
			r.Hour = d.Hour
		}
		o.retention = r
	})
}

// WithQueueSize bounds the history records waiting to be written; when it is full the
// oldest are dropped and counted. Default 10000.
func WithQueueSize(n int) Option { return optionFunc(func(o *options) { o.queueSize = n }) }

// WithQueueBytes bounds the memory the history records waiting to be written hold (an
// estimate: their JSON data, value names and values); when over it the oldest are
// dropped and counted, as when WithQueueSize's bound is reached. A record larger than
// the bound by itself is dropped at once. Default 8 MiB; at least 1 KiB.
func WithQueueBytes(n int64) Option { return optionFunc(func(o *options) { o.queueBytes = n }) }

// WithOpTimeout bounds each synchronous operation and each history batch, so a
// PostgreSQL that does not answer never holds a caller longer. Default 5s.
func WithOpTimeout(d time.Duration) Option { return optionFunc(func(o *options) { o.opTimeout = d }) }

// WithJobInterval sets how often the background job rolls history up and applies the
// retention. Default 1m.
func WithJobInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.jobInterval = d })
}

// WithMaxNotifications bounds the notification log, and the alert history apart; the
// background job deletes the oldest records beyond it. Default 10000.
func WithMaxNotifications(n int) Option {
	return optionFunc(func(o *options) { o.maxNotifications = n })
}
