package discovery

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Option configures a Registrar, Resolver or Balancer. Each option says which
// constructors use it; passing one to a constructor that does not use it, or passing a
// nil Option, is an error wrapping ErrInvalidArgument.
type Option interface{ apply(*options) }

// user is a set of constructors.
type user uint8

const (
	registrarUse user = 1 << iota
	resolverUse
	balancerUse
	anyUse = registrarUse | resolverUse | balancerUse
)

func (u user) String() string {
	switch u {
	case registrarUse:
		return "Registrar"
	case resolverUse:
		return "Resolver"
	case balancerUse:
		return "Balancer"
	}
	return "any"
}

// option is a named option and the constructors that use it.
type option struct {
	name string
	by   user
	set  func(*options)
}

func (o option) apply(opts *options) {
	o.set(opts)
	opts.applied = append(opts.applied, o)
}

type options struct {
	applied []option
	logger  *zap.Logger
	// Registrar.
	ttl                    time.Duration
	backoffMin, backoffMax time.Duration
	// Balancer.
	cooldown      time.Duration
	check         HealthChecker
	checkInterval time.Duration
	vnodes        int
	idle          time.Duration
}

const (
	// minTTL is etcd's minimum lease TTL with its default election timeout: a shorter
	// one would be raised by etcd and not mean what it says.
	minTTL = 2 * time.Second
	// maxVirtualNodes bounds the consistent-hash ring: points = instances × vnodes.
	maxVirtualNodes = 10000
)

func defaults() options {
	return options{
		logger:     zap.NewNop(),
		ttl:        10 * time.Second,
		backoffMin: 50 * time.Millisecond,
		backoffMax: 5 * time.Second,
		cooldown:   10 * time.Second,
		vnodes:     160,
		idle:       time.Minute,
	}
}

// buildOptions applies opts for the constructor of who and validates the result.
func buildOptions(opts []Option, who user) (options, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	for _, opt := range o.applied {
		if opt.by&who == 0 {
			return o, fmt.Errorf("%w: %s applies to a %s, not a %s", ErrInvalidArgument, opt.name, opt.by, who)
		}
	}
	bad := func(format string, args ...any) (options, error) {
		return o, fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
	}
	switch {
	case o.logger == nil:
		return bad("WithLogger: nil logger")
	case o.ttl < minTTL:
		return bad("WithTTL: %v is below %v", o.ttl, minTTL)
	case o.backoffMin <= 0 || o.backoffMax < o.backoffMin:
		return bad("WithBackoff: %v..%v", o.backoffMin, o.backoffMax)
	case o.cooldown <= 0:
		return bad("WithCooldown: %v is not positive", o.cooldown)
	case o.check == nil && o.has("WithHealthCheck"):
		return bad("WithHealthCheck: nil checker")
	case o.check != nil && o.checkInterval <= 0:
		return bad("WithHealthCheck: interval %v is not positive", o.checkInterval)
	case o.vnodes < 1 || o.vnodes > maxVirtualNodes:
		return bad("WithVirtualNodes: %d is outside 1-%d", o.vnodes, maxVirtualNodes)
	case o.idle < 10*time.Millisecond:
		return bad("WithIdleTimeout: %v is below 10ms", o.idle)
	}
	return o, nil
}

// has reports whether the option called name was applied.
func (o *options) has(name string) bool {
	for _, opt := range o.applied {
		if opt.name == name {
			return true
		}
	}
	return false
}

// WithLogger sets the logger of a Registrar, Resolver or Balancer; the default discards
// everything.
func WithLogger(l *zap.Logger) Option {
	return option{"WithLogger", anyUse, func(o *options) { o.logger = l }}
}

// WithTTL sets the TTL of a Registrar's leases (default 10s, at least 2s): a registrant
// that dies disappears from resolvers within about this long. etcd raises a TTL below
// its own minimum, 1.5 × its election timeout (2s with etcd's default 1s), and that
// longer TTL is the one that applies.
func WithTTL(ttl time.Duration) Option {
	return option{"WithTTL", registrarUse, func(o *options) { o.ttl = ttl }}
}

// WithBackoff sets a Registrar's jittered delays between writes that keep a
// registration in place (default 50ms doubling up to 5s). Failed attempts never stop
// until Deregister or Close; successful rewrites also back off, so a key that keeps
// being overwritten is not rewritten in a tight loop.
func WithBackoff(min, max time.Duration) Option {
	return option{"WithBackoff", registrarUse, func(o *options) { o.backoffMin, o.backoffMax = min, max }}
}

// WithCooldown sets how long a Balancer skips an instance after a failure (default 10s).
func WithCooldown(d time.Duration) Option {
	return option{"WithCooldown", balancerUse, func(o *options) { o.cooldown = d }}
}

// WithHealthCheck makes a Balancer check, each interval, every instance of the services
// it has picked from recently (see WithIdleTimeout); an instance whose check fails is
// skipped for the cool-down.
func WithHealthCheck(check HealthChecker, interval time.Duration) Option {
	return option{"WithHealthCheck", balancerUse, func(o *options) { o.check, o.checkInterval = check, interval }}
}

// WithVirtualNodes sets how many points each instance has on a ConsistentHash
// Balancer's ring (default 160, at most 10000). More points spread keys more evenly.
// Other strategies refuse it.
func WithVirtualNodes(n int) Option {
	return option{"WithVirtualNodes", balancerUse, func(o *options) { o.vnodes = n }}
}

// WithIdleTimeout sets how long a Balancer keeps its state about a service nobody picks
// from (default 1m, at least 10ms): after between d and 1.5d without a pick and with no pick in
// flight, it forgets the service's cool-downs and round-robin position and stops
// health-checking its instances.
func WithIdleTimeout(d time.Duration) Option {
	return option{"WithIdleTimeout", balancerUse, func(o *options) { o.idle = d }}
}
