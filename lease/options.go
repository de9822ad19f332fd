package lease

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Option configures a Keeper.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	// regrant, when set, is called with every re-granted lease. Default nil: no re-grant.
	regrant func(ctx context.Context, id clientv3.LeaseID) error
	// logger receives re-grant and renewal failures. Default zap.NewNop().
	logger *zap.Logger
	// backoffMin and backoffMax bound the delay between re-grant and hook attempts.
	// Default 100ms to 5s.
	backoffMin, backoffMax time.Duration
}

func defaults() options {
	return options{
		logger:     zap.NewNop(),
		backoffMin: 100 * time.Millisecond,
		backoffMax: 5 * time.Second,
	}
}

// WithRegrant makes the Keeper replace a lost lease with a new one (with backoff and no
// retry cap, until Close) and then call hook with the new ID, on the Keeper's goroutine,
// so that the owner can re-attach its keys. If hook returns an error it is called again,
// with backoff, while the new lease lives. The context passed to hook ends at Close. The
// hook must not call Close. A nil hook re-grants without a callback.
func WithRegrant(hook func(ctx context.Context, id clientv3.LeaseID) error) Option {
	return optionFunc(func(o *options) {
		if hook == nil {
			hook = func(context.Context, clientv3.LeaseID) error { return nil }
		}
		o.regrant = hook
	})
}

// WithLogger sets the logger. Default: zap.NewNop().
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}
