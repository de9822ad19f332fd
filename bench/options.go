package bench

import (
	"fmt"
	"io"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Option configures a Runner.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger           *zap.Logger
	clientConfig     clientv3.Config
	progress         io.Writer
	progressInterval time.Duration
	prefix           string
	quotaShare       float64
	cleanupTimeout   time.Duration
}

// Defaults, in one place.
const (
	// DefaultPrefix is the only prefix runs write under unless WithPrefix says otherwise.
	DefaultPrefix = "/bench/"
	// DefaultQuotaShare is the share of its backend quota a run may fill a member's
	// database up to.
	DefaultQuotaShare = 0.75
	// DefaultQuotaBytes is the quota assumed for a member that does not report one
	// (etcd before 3.6): etcd's default.
	DefaultQuotaBytes = 2 << 30
	// DefaultCleanupTimeout bounds the deletion of a run's keys.
	DefaultCleanupTimeout = 10 * time.Second
)

func defaultOptions() options {
	return options{
		logger:           zap.NewNop(),
		clientConfig:     clientv3.Config{DialTimeout: 5 * time.Second},
		progressInterval: time.Second,
		prefix:           DefaultPrefix,
		quotaShare:       DefaultQuotaShare,
		cleanupTimeout:   DefaultCleanupTimeout,
	}
}

func (o *options) validate() error {
	switch {
	case o.logger == nil:
		return fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	case o.progressInterval <= 0:
		return fmt.Errorf("%w: WithProgress: interval must be positive, got %v", ErrInvalidArgument, o.progressInterval)
	case o.clientConfig.DialTimeout < 0:
		return fmt.Errorf("%w: WithClientConfig: negative dial timeout %v", ErrInvalidArgument, o.clientConfig.DialTimeout)
	case len(o.prefix) < 2 || !strings.HasPrefix(o.prefix, "/") || !strings.HasSuffix(o.prefix, "/"):
		return fmt.Errorf("%w: WithPrefix: %q must start and end with / and not be the root", ErrInvalidArgument, o.prefix)
	case !(o.quotaShare > 0 && o.quotaShare <= 1):
		return fmt.Errorf("%w: WithQuotaShare: %v must be in (0, 1]", ErrInvalidArgument, o.quotaShare)
	case o.cleanupTimeout <= 0:
		return fmt.Errorf("%w: WithCleanupTimeout: %v must be positive", ErrInvalidArgument, o.cleanupTimeout)
	}
	return nil
}

// WithLogger sets the logger. Default: no logging.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithClientConfig is the template for the run's own connections: TLS, credentials,
// dial timeout. Its Endpoints, when empty, are those of the client given to New.
// Default: the client's endpoints, a 5s dial timeout, no TLS.
func WithClientConfig(cfg clientv3.Config) Option {
	return optionFunc(func(o *options) { o.clientConfig = cfg })
}

// WithProgress writes progress to w while a run is going: a bar redrawn in place every
// interval when w is a terminal, and one plain line per 10% of the run otherwise (for
// logs). Default: none.
func WithProgress(w io.Writer, interval time.Duration) Option {
	return optionFunc(func(o *options) {
		o.progress = w
		o.progressInterval = interval
	})
}

// WithPrefix sets the only key prefix runs may write under: a Config.Prefix outside it
// is refused, so a run requested through an API cannot write into another
// application's keys. Default DefaultPrefix ("/bench/").
func WithPrefix(p string) Option {
	return optionFunc(func(o *options) { o.prefix = p })
}

// WithQuotaShare sets the share of its backend quota a run may fill any member's
// database up to. A run whose writes could pass it is refused with ErrQuota before it
// starts when it is bounded by Ops alone, and otherwise stopped before the write that
// would (Result.Stopped says so). Default 0.75.
func WithQuotaShare(share float64) Option {
	return optionFunc(func(o *options) { o.quotaShare = share })
}

// WithCleanupTimeout bounds the deletion of a run's keys, which happens however the run
// ends (cancelled included). Default 10s.
func WithCleanupTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.cleanupTimeout = d })
}
