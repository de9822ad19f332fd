package barrier

import (
	"fmt"
	"time"
)

// Option configures a Barrier or DoubleBarrier.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	// ttl is the TTL of the lease the participant's keys live on: how long after a crash
	// etcd counts the participant out. Default 10s.
	ttl time.Duration
}

func defaults() options { return options{ttl: 10 * time.Second} }

func (o *options) validate() error {
	if o.ttl < time.Second {
		return fmt.Errorf("%w: WithTTL: %v is under 1s", ErrInvalidArgument, o.ttl)
	}
	if o.ttl > maxTTL {
		return fmt.Errorf("%w: WithTTL: %v is over etcd's largest lease TTL %v", ErrInvalidArgument, o.ttl, maxTTL)
	}
	return nil
}

// maxTTL is etcd's largest lease TTL: 9e9 seconds, about 285 years.
const maxTTL = 9_000_000_000 * time.Second

// WithTTL sets the TTL of the lease this participant's keys live on, rounded up to whole
// seconds: a participant that crashes or is cut off is counted out this long (at most
// about this long plus an etcd election) after its last renewal. Default 10s; at least 1s, at most etcd's largest lease TTL (9e9s).
func WithTTL(d time.Duration) Option {
	return optionFunc(func(o *options) { o.ttl = d })
}

func build(opts []Option) (options, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	return o, o.validate()
}
