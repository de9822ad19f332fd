package lock

import (
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// Option configures a Mutex, RWMutex, Semaphore or Manager.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	// ttl of the lease the lock is bound to. Default 10s, at least 1s, at most etcd's 9e9s.
	ttl    time.Duration
	ttlSet bool
	// session to share instead of granting a lease of our own. Default none.
	session *concurrency.Session
	// logger. Default zap.NewNop().
	logger *zap.Logger
}

func defaults() options {
	return options{ttl: 10 * time.Second, logger: zap.NewNop()}
}

// WithTTL sets the TTL of the lease the lock is bound to (default 10s, at least 1s and at
// most etcd's maximum of 9e9s; etcd may round it up to its minimum lease TTL). A holder
// that crashes keeps the lock until the TTL runs out; a holder that cannot reach etcd
// gives it up (Done closes) a margin before the TTL could run out at the server. etcd
// resets every lease's TTL when its own leader changes, so a dead holder's lock may
// outlive its TTL by up to one TTL per etcd leader election. Not allowed with
// WithSession, whose TTL is its owner's.
func WithTTL(ttl time.Duration) Option {
	return optionFunc(func(o *options) { o.ttl, o.ttlSet = ttl, true })
}

// WithSession binds the lock to a session the caller owns and closes, so that several
// locks (and other keys) share one lease. When that session is lost, Lock returns
// ErrSessionLost until the caller supplies a new one; without WithSession the lock
// grants a lease of its own and replaces it after loss.
func WithSession(s *concurrency.Session) Option {
	return optionFunc(func(o *options) { o.session = s })
}

// WithLogger sets the logger (default zap.NewNop()).
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

func buildOptions(opts []Option) (options, error) {
	o := defaults()
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: nil option", ErrInvalidArgument)
		}
		opt.apply(&o)
	}
	if o.ttl < time.Second || o.ttl > ownership.MaxTTL {
		return o, fmt.Errorf("%w: TTL %v is not within 1s and etcd's maximum %v", ErrInvalidArgument, o.ttl, ownership.MaxTTL)
	}
	if o.session != nil && o.ttlSet {
		return o, fmt.Errorf("%w: WithTTL and WithSession together (the session's TTL is its owner's)", ErrInvalidArgument)
	}
	if o.logger == nil {
		return o, fmt.Errorf("%w: nil logger", ErrInvalidArgument)
	}
	return o, nil
}
