package ratelimit

import (
	"fmt"

	"go.uber.org/zap"
)

// Option configures a Limiter.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	// burst is the bucket's capacity, shared by the fleet. Default: limit (one period's
	// worth).
	burst int
	// batch is the most tokens an instance takes from the bucket at once. Default: a
	// twentieth of limit, at least 1.
	batch int
	// logger receives failures to give tokens back at Close. Default zap.NewNop().
	logger *zap.Logger
}

func (o *options) validate(limit int) error {
	switch {
	case o.burst < 1:
		return fmt.Errorf("%w: WithBurst: %d is under 1", ErrInvalidArgument, o.burst)
	case o.burst > maxBurst:
		return fmt.Errorf("%w: burst %d is over 2^53 (the burst is the limit unless WithBurst sets it)", ErrInvalidArgument, o.burst)
	case o.batch < 1:
		return fmt.Errorf("%w: WithBatch: %d is under 1", ErrInvalidArgument, o.batch)
	case o.batch > o.burst:
		return fmt.Errorf("%w: WithBatch: %d is over the burst %d", ErrInvalidArgument, o.batch, o.burst)
	case o.logger == nil:
		return fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	}
	return nil
}

// maxBurst bounds the bucket's capacity: its level is a float64, which counts tokens
// exactly only up to 2^53.
const maxBurst = 1 << 53

// WithBurst sets the bucket's capacity: how many tokens the fleet may spend at once after
// a quiet spell, at most 2^53. Default: limit.
func WithBurst(n int) Option { return optionFunc(func(o *options) { o.burst = n }) }

// WithBatch sets the most tokens an instance takes from etcd in one round trip. Larger
// batches mean fewer round trips and a larger overshoot bound (see the package doc).
// Default: limit/20, at least 1; at most the burst.
func WithBatch(n int) Option { return optionFunc(func(o *options) { o.batch = n }) }

// WithLogger sets the logger. Default: zap.NewNop().
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }
