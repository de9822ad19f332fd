package store

import (
	"fmt"
	"time"
)

// Option configures Open.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// Defaults, in one place.
const (
	// DefaultLockTimeout is how long Open waits for another process's lock on the file.
	DefaultLockTimeout = time.Second
	// DefaultMaxNotifications bounds the notification log.
	DefaultMaxNotifications = 10000
	// DefaultHistoryRetention is how long raw health checks and metric snapshots are kept.
	DefaultHistoryRetention = 24 * time.Hour
	// DefaultMemoryHistory bounds the history a Memory store keeps per cluster (and
	// member), whatever its age.
	DefaultMemoryHistory = 1000
)

type options struct {
	lockTimeout      time.Duration
	maxNotifications int
	retention        time.Duration
}

func defaults() options {
	return options{lockTimeout: DefaultLockTimeout, maxNotifications: DefaultMaxNotifications, retention: DefaultHistoryRetention}
}

func apply(opts []Option) (options, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	switch {
	case o.lockTimeout <= 0:
		return o, fmt.Errorf("%w: lock timeout %v must be positive", ErrInvalidArgument, o.lockTimeout)
	case o.retention <= 0:
		return o, fmt.Errorf("%w: history retention %v must be positive", ErrInvalidArgument, o.retention)
	case o.maxNotifications < 1:
		return o, fmt.Errorf("%w: max notifications %d must be at least 1", ErrInvalidArgument, o.maxNotifications)
	}
	return o, nil
}

// WithLockTimeout sets how long Open waits for another process to release the file
// before it fails with ErrLocked. Default 1s.
func WithLockTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.lockTimeout = d })
}

// WithMaxNotifications bounds the notification log, and the alert history apart;
// the oldest records are dropped first. Default 10000.
func WithMaxNotifications(n int) Option {
	return optionFunc(func(o *options) { o.maxNotifications = n })
}

// WithHistoryRetention sets how long health checks and metric snapshots are kept; older
// ones are deleted as new ones are written. Default 24h.
func WithHistoryRetention(d time.Duration) Option {
	return optionFunc(func(o *options) { o.retention = d })
}
