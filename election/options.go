package election

import (
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// Option configures a Candidate, an Observer or a LeaderTask. Each constructor says
// which options it reads; passing it another is an error (ErrInvalidArgument).
type Option interface{ apply(*options) }

// user is a constructor that takes options.
type user int

const (
	forCandidate user = 1 << iota
	forObserver
	forLeaderTask
)

var userNames = map[user]string{forCandidate: "New", forObserver: "NewObserver", forLeaderTask: "NewLeaderTask"}

// option is an Option with its name and the constructors that read it.
type option struct {
	name  string
	users user
	fn    func(*options)
}

func (o option) apply(opts *options) { o.fn(opts) }

type options struct {
	// ttl of the candidate's lease. Default 10s, at least 1s, at most 9e9s. Candidate only.
	ttl    time.Duration
	ttlSet bool
	// session shared instead of a lease of our own. Default none. Candidate only.
	session *concurrency.Session
	// logger. Default zap.NewNop().
	logger *zap.Logger
	// callbacks, each optional. Candidate only.
	onElected   func(token int64)
	onDefeat    func(err error)
	onNewLeader func(Leader)
}

func defaults() options {
	return options{ttl: 10 * time.Second, logger: zap.NewNop()}
}

// WithTTL sets the TTL of the candidate's lease (default 10s, at least 1s, at most etcd's
// maximum of 9e9s). A crashed leader is replaced once its TTL runs out; a leader cut off
// from etcd steps down (its leader context is canceled) a margin — a sixth of the TTL, at
// least 200ms — before etcd could expire its lease. etcd resets lease TTLs when its own
// leader changes, so a crashed leader may be replaced later than its TTL. Not allowed
// with WithSession.
func WithTTL(ttl time.Duration) Option {
	return option{"WithTTL", forCandidate, func(o *options) { o.ttl = ttl; o.ttlSet = true }}
}

// WithSession campaigns on a session the caller owns and closes. When it is lost,
// Campaign and Run return ErrSessionLost; without it the candidate grants a lease of its
// own and replaces it after loss.
func WithSession(s *concurrency.Session) Option {
	return option{"WithSession", forCandidate, func(o *options) { o.session = s }}
}

// WithLogger sets the logger (default zap.NewNop()).
func WithLogger(l *zap.Logger) Option {
	return option{"WithLogger", forCandidate | forObserver | forLeaderTask, func(o *options) { o.logger = l }}
}

// OnElected is called with the fencing token each time the candidate becomes leader.
// Callbacks must not block; they are called one at a time, from the candidate's
// goroutines (Campaign's caller, Run's, or the candidate's own monitor).
func OnElected(fn func(token int64)) Option {
	return option{"OnElected", forCandidate, func(o *options) { o.onElected = fn }}
}

// OnDefeat is called each time a leadership ends, with nil after Resign (or Run's
// function returning) and the cause (wrapping ErrLost) after a loss. Must not block.
func OnDefeat(fn func(err error)) Option {
	return option{"OnDefeat", forCandidate, func(o *options) { o.onDefeat = fn }}
}

// OnNewLeader is called, while Run runs, with each change of leader as an Observer
// sees it (the zero Leader when there is none). Must not block.
func OnNewLeader(fn func(Leader)) Option {
	return option{"OnNewLeader", forCandidate, func(o *options) { o.onNewLeader = fn }}
}

func buildOptions(u user, opts []Option) (options, error) {
	o := defaults()
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: nil option", ErrInvalidArgument)
		}
		if op, ok := opt.(option); ok && op.users&u == 0 {
			return o, fmt.Errorf("%w: %s does not apply to %s", ErrInvalidArgument, op.name, userNames[u])
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
