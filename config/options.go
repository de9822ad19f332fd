package config

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Option configures a Store or Flags.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger         *zap.Logger
	readyTimeout   time.Duration
	snapshotPrefix string

	set optionSet
}

// optionSet records which options were given, so that NewFlags can refuse the ones it
// would ignore.
type optionSet uint

const setSnapshotPrefix optionSet = 1

func defaults() options {
	return options{logger: zap.NewNop(), readyTimeout: 5 * time.Second}
}

func buildOptions(opts []Option) (options, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	switch {
	case o.logger == nil:
		return o, fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	case o.readyTimeout < 0:
		return o, fmt.Errorf("%w: WithReadyTimeout: negative timeout %v", ErrInvalidArgument, o.readyTimeout)
	}
	return o, nil
}

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithReadyTimeout bounds how long a getter called right after New waits for the first
// listing before returning ErrNotReady (default 5s; 0 means do not wait). Call WaitReady
// to wait under a context instead.
func WithReadyTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.readyTimeout = d })
}

// WithSnapshotPrefix sets where snapshots are kept (default: the Store's prefix without
// its trailing "/", plus ".snapshots/"). It must not be under the Store's prefix. Store
// only: NewFlags refuses it.
func WithSnapshotPrefix(p string) Option {
	return optionFunc(func(o *options) { o.snapshotPrefix = p; o.set |= setSnapshotPrefix })
}
