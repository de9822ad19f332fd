package maintenance

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// Option configures a Maintainer.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	checker       *health.Checker
	logger        *zap.Logger
	pollInterval  time.Duration
	settleTimeout time.Duration
	markPrefix    string
}

// Defaults, in one place.
const (
	// DefaultPollInterval is how often a waiting operation re-checks the cluster.
	DefaultPollInterval = 200 * time.Millisecond
	// DefaultSettleTimeout is how long an operation waits for the cluster to be healthy
	// again between two steps (two members of a defragmentation, a leader move) before
	// it aborts.
	DefaultSettleTimeout = 30 * time.Second
	// DefaultMarkPrefix is where Mark writes its revision marks.
	DefaultMarkPrefix = "/etcd-monitor/maintenance/marks/"
)

func defaults() options {
	return options{
		logger:        zap.NewNop(),
		pollInterval:  DefaultPollInterval,
		settleTimeout: DefaultSettleTimeout,
		markPrefix:    DefaultMarkPrefix,
	}
}

func (o *options) validate() error {
	switch {
	case o.logger == nil:
		return fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	case o.pollInterval <= 0:
		return fmt.Errorf("%w: WithPollInterval: %v must be positive", ErrInvalidArgument, o.pollInterval)
	case o.settleTimeout <= 0:
		return fmt.Errorf("%w: WithSettleTimeout: %v must be positive", ErrInvalidArgument, o.settleTimeout)
	case o.markPrefix == "" || o.markPrefix[len(o.markPrefix)-1] != '/':
		return fmt.Errorf("%w: WithMarkPrefix: %q must be non-empty and end in /", ErrInvalidArgument, o.markPrefix)
	}
	return nil
}

// WithChecker sets the health checker that guards every operation and tells it each
// member's endpoint, size and raft state. Default: health.New(cli). Pass one made with
// health.WithEndpoints when the members' advertised client URLs are not reachable from
// here; it must check the same cluster cli reaches, and its source must list every
// member etcd lists (learners and members not started yet included) under etcd's IDs:
// AddLearner and Remove wait for a report whose membership is etcd's.
func WithChecker(c *health.Checker) Option {
	return optionFunc(func(o *options) { o.checker = c })
}

// WithLogger sets the logger; every step an operation takes is logged at info level.
// Default zap.NewNop().
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithPollInterval sets how often a waiting operation re-checks the cluster. Default 200ms.
func WithPollInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.pollInterval = d })
}

// WithSettleTimeout bounds how long an operation waits for the cluster to be healthy
// again between two steps before it aborts. Default 30s. An add that etcd refuses as
// "unhealthy cluster" is retried for at least 10s whatever this says: etcd accepts one
// only once its member has been connected to a quorum of the voters (every voter, in
// a cluster of three) for 5s.
func WithSettleTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.settleTimeout = d })
}

// WithMarkPrefix sets the key prefix of the revision marks Mark writes and Compact reads
// for KeepNewerThan. Default DefaultMarkPrefix.
func WithMarkPrefix(p string) Option {
	return optionFunc(func(o *options) { o.markPrefix = p })
}
