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
}

func defaults() options {
	return options{logger: zap.NewNop(), readyTimeout: 5 * time.Second}
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
	case o.readyTimeout < 0:
		return o, fmt.Errorf("%w: negative ready timeout %v", ErrInvalidOption, o.readyTimeout)
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
// its trailing "/", plus ".snapshots/"). It must not be under the Store's prefix.
func WithSnapshotPrefix(p string) Option {
	return optionFunc(func(o *options) { o.snapshotPrefix = p })
}
