package txn

import (
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Option configures one call.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// DefaultRetries is the retry bound of Update and Atomic. It is generous on purpose:
// with 8 writers incrementing one key through the 3 members of a cluster, the unluckiest
// update needs about 40 attempts; a bound near that would turn ordinary contention into
// errors.
const DefaultRetries = 100

type options struct {
	// retries is how many times Update and Atomic retry after a conflict (so at most
	// retries+1 attempts). Default DefaultRetries.
	retries int
	// lease attaches written keys to a lease. Default none.
	lease clientv3.LeaseID
	// isolation of Atomic. Default concurrency.SerializableSnapshot.
	isolation concurrency.Isolation
	// backoffMin and backoffMax bound the jittered pause between attempts. Default 2ms
	// to 100ms.
	backoffMin, backoffMax time.Duration
}

func newOptions(opts []Option) (options, error) {
	o := options{
		retries:    DefaultRetries,
		isolation:  concurrency.SerializableSnapshot,
		backoffMin: 2 * time.Millisecond,
		backoffMax: 100 * time.Millisecond,
	}
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	switch {
	case o.retries < 0:
		return o, fmt.Errorf("%w: WithRetries: negative retry bound %d", ErrInvalidOption, o.retries)
	case o.isolation < concurrency.SerializableSnapshot || o.isolation > concurrency.ReadCommitted:
		return o, fmt.Errorf("%w: WithIsolation: unknown isolation %d", ErrInvalidOption, o.isolation)
	case o.lease < 0:
		return o, fmt.Errorf("%w: WithLease: negative lease %d", ErrInvalidOption, o.lease)
	}
	return o, nil
}

func (o *options) putOpts() []clientv3.OpOption {
	if o.lease != clientv3.NoLease {
		return []clientv3.OpOption{clientv3.WithLease(o.lease)}
	}
	return nil
}

// WithRetries bounds how many times Update and Atomic retry after a conflict; 0 means a
// single attempt. Negative values are an error. Default DefaultRetries (100).
func WithRetries(n int) Option { return optionFunc(func(o *options) { o.retries = n }) }

// WithLease attaches the keys written by CompareAndSwap, PutIfAbsent and Update to a
// lease. Default: no lease.
func WithLease(id clientv3.LeaseID) Option { return optionFunc(func(o *options) { o.lease = id }) }

// WithIsolation sets the isolation level of Atomic. Default
// concurrency.SerializableSnapshot.
func WithIsolation(iso concurrency.Isolation) Option {
	return optionFunc(func(o *options) { o.isolation = iso })
}
