package breaker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Option configures a Breaker.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	// threshold is the number of consecutive failures, seen by one instance, that trips
	// the breaker for all. Default 5.
	threshold int
	// cooldown is how long the breaker stays open before it lets one probe through.
	// Default 30s.
	cooldown time.Duration
	// probeTimeout is the TTL of the probe's claim and the deadline of the probe's
	// context: a probe that hangs or whose instance crashes frees the claim after it.
	// Default 10s.
	probeTimeout time.Duration
	// isFailure decides which errors of the protected call count as failures. Default:
	// any error but context.Canceled.
	isFailure func(error) bool
	// logger receives etcd failures the breaker works around. Default zap.NewNop().
	logger *zap.Logger
}

func defaults() options {
	return options{
		threshold:    5,
		cooldown:     30 * time.Second,
		probeTimeout: 10 * time.Second,
		isFailure:    func(err error) bool { return err != nil && !errors.Is(err, context.Canceled) },
		logger:       zap.NewNop(),
	}
}

func (o *options) validate() error {
	switch {
	case o.threshold < 1:
		return fmt.Errorf("%w: WithFailureThreshold: %d is under 1", ErrInvalidArgument, o.threshold)
	case o.cooldown < time.Second:
		return fmt.Errorf("%w: WithCooldown: %v is under 1s", ErrInvalidArgument, o.cooldown)
	case o.cooldown > maxDuration:
		return fmt.Errorf("%w: WithCooldown: %v is over %v", ErrInvalidArgument, o.cooldown, maxDuration)
	case o.probeTimeout < time.Second:
		return fmt.Errorf("%w: WithProbeTimeout: %v is under 1s", ErrInvalidArgument, o.probeTimeout)
	case o.probeTimeout > maxDuration:
		return fmt.Errorf("%w: WithProbeTimeout: %v is over %v", ErrInvalidArgument, o.probeTimeout, maxDuration)
	case o.isFailure == nil:
		return fmt.Errorf("%w: WithIsFailure: nil function", ErrInvalidArgument)
	case o.logger == nil:
		return fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	}
	return nil
}

// maxDuration bounds the cool-down and the probe timeout: they are lease TTLs (etcd
// refuses TTLs over about 285 years), and the staleness bound adds twice the one to the
// other, which must fit in a Duration.
const maxDuration = 50 * 365 * 24 * time.Hour

// WithFailureThreshold sets how many consecutive failures one instance sees before it
// trips the breaker for all. Default 5.
func WithFailureThreshold(n int) Option {
	return optionFunc(func(o *options) { o.threshold = n })
}

// WithCooldown sets how long the breaker stays open before one probe may go through,
// rounded up to whole seconds (it is the TTL of a lease, so etcd's clock measures it, not
// the instances'). Default 30s; at least 1s, at most 50 years.
func WithCooldown(d time.Duration) Option {
	return optionFunc(func(o *options) { o.cooldown = d })
}

// WithProbeTimeout bounds the half-open probe: its context ends after it, and the claim
// that makes it the only probe lives on a lease of this TTL, so a probe whose instance
// crashes frees the claim after it. Default 10s; at least 1s, at most 50 years.
func WithProbeTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.probeTimeout = d })
}

// WithIsFailure sets which errors of the protected call count as failures; others count
// as successes. Default: every error except context.Canceled.
func WithIsFailure(fn func(error) bool) Option {
	return optionFunc(func(o *options) { o.isFailure = fn })
}

// WithLogger sets the logger. Default: zap.NewNop().
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}
