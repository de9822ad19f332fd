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

	set optionSet
}

// optionSet records which options were given, so that a call can refuse the ones it
// would ignore.
type optionSet uint

const (
	setRetries optionSet = 1 << iota
	setLease
	setIsolation
)

var optionNames = []struct {
	bit  optionSet
	name string
}{{setRetries, "WithRetries"}, {setLease, "WithLease"}, {setIsolation, "WithIsolation"}}

// newOptions applies opts for the call named call, which uses only the options in uses.
func newOptions(call string, uses optionSet, opts []Option) (options, error) {
	o := options{
		retries:    DefaultRetries,
		isolation:  concurrency.SerializableSnapshot,
		backoffMin: 2 * time.Millisecond,
		backoffMax: 100 * time.Millisecond,
	}
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: %s: option %d is nil", ErrInvalidArgument, call, i)
		}
		opt.apply(&o)
	}
	for _, n := range optionNames {
		if o.set&n.bit != 0 && uses&n.bit == 0 {
			return o, fmt.Errorf("%w: %s does not use %s", ErrInvalidArgument, call, n.name)
		}
	}
	switch {
	case o.retries < 0:
		return o, fmt.Errorf("%w: WithRetries: negative retry bound %d", ErrInvalidArgument, o.retries)
	case o.isolation < concurrency.SerializableSnapshot || o.isolation > concurrency.ReadCommitted:
		return o, fmt.Errorf("%w: WithIsolation: unknown isolation %d", ErrInvalidArgument, o.isolation)
	case o.lease < 0:
		return o, fmt.Errorf("%w: WithLease: negative lease %d", ErrInvalidArgument, o.lease)
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
// single attempt. Negative values are an error. Default DefaultRetries (100). Other
// calls refuse it.
func WithRetries(n int) Option {
	return optionFunc(func(o *options) { o.retries = n; o.set |= setRetries })
}

// WithLease attaches the keys written by CompareAndSwap, PutIfAbsent and Update to a
// lease. Default: no lease. Atomic refuses it (use clientv3.WithLease in stm.Put).
func WithLease(id clientv3.LeaseID) Option {
	return optionFunc(func(o *options) { o.lease = id; o.set |= setLease })
}

// WithIsolation sets the isolation level of Atomic. Default
// concurrency.SerializableSnapshot. Other calls refuse it.
func WithIsolation(iso concurrency.Isolation) Option {
	return optionFunc(func(o *options) { o.isolation = iso; o.set |= setIsolation })
}
