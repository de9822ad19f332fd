package discovery

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Option configures a Registrar, Resolver or Balancer. Each constructor uses the options
// that concern it and ignores the rest, so one option list can be shared.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger *zap.Logger
	// Registrar.
	ttl                    time.Duration
	backoffMin, backoffMax time.Duration
	// Balancer.
	cooldown      time.Duration
	check         HealthChecker
	checkInterval time.Duration
	vnodes        int
}

func defaults() options {
	return options{
		logger:     zap.NewNop(),
		ttl:        10 * time.Second,
		backoffMin: 50 * time.Millisecond,
		backoffMax: 5 * time.Second,
		cooldown:   10 * time.Second,
		vnodes:     160,
	}
}

func buildOptions(opts []Option) (options, error) {
	o := defaults()
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	switch {
	case o.logger == nil:
		return o, fmt.Errorf("%w: nil logger", ErrInvalidOption)
	case o.ttl < time.Second:
		return o, fmt.Errorf("%w: TTL %v is below 1s", ErrInvalidOption, o.ttl)
	case o.backoffMin <= 0 || o.backoffMax < o.backoffMin:
		return o, fmt.Errorf("%w: backoff %v..%v", ErrInvalidOption, o.backoffMin, o.backoffMax)
	case o.cooldown <= 0:
		return o, fmt.Errorf("%w: cool-down %v is not positive", ErrInvalidOption, o.cooldown)
	case o.check != nil && o.checkInterval <= 0:
		return o, fmt.Errorf("%w: health check interval %v is not positive", ErrInvalidOption, o.checkInterval)
	case o.vnodes < 1:
		return o, fmt.Errorf("%w: %d virtual nodes", ErrInvalidOption, o.vnodes)
	}
	return o, nil
}

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithTTL sets the TTL of a registration's lease (default 10s, at least 1s): a registrant
// that dies disappears from resolvers within about this long.
func WithTTL(ttl time.Duration) Option { return optionFunc(func(o *options) { o.ttl = ttl }) }

// WithBackoff sets the jittered delays between re-registration attempts (default 50ms
// doubling up to 5s). Attempts never stop until Deregister or Close.
func WithBackoff(min, max time.Duration) Option {
	return optionFunc(func(o *options) { o.backoffMin, o.backoffMax = min, max })
}

// WithCooldown sets how long a Balancer skips an instance after a failure (default 10s).
func WithCooldown(d time.Duration) Option { return optionFunc(func(o *options) { o.cooldown = d }) }

// WithHealthCheck makes a Balancer check every instance it balances over each interval;
// an instance whose check fails is skipped for the cool-down.
func WithHealthCheck(check HealthChecker, interval time.Duration) Option {
	return optionFunc(func(o *options) { o.check, o.checkInterval = check, interval })
}

// WithVirtualNodes sets how many points each instance has on the consistent-hash ring
// (default 160). More points spread keys more evenly.
func WithVirtualNodes(n int) Option { return optionFunc(func(o *options) { o.vnodes = n }) }
