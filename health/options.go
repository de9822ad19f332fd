package health

import (
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Option configures a Checker.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	timeout      time.Duration
	lagThreshold uint64
	endpoints    map[string]string
	httpClient   *http.Client
	source       StatusSource
	logger       *zap.Logger
}

// Defaults, in one place.
const (
	// DefaultTimeout bounds each member's probe.
	DefaultTimeout = 2 * time.Second
	// DefaultLagThreshold is the raft index lag beyond which a member counts as partitioned.
	DefaultLagThreshold = 1000
	// LagChecks is how many consecutive checks must find a member's raft index lagging
	// before it is reported as partitioned for it: the first check has no apply rate to
	// judge a lag by, and one late answer under load is no partition.
	LagChecks = 2
	// HistorySize is how many leader changes a Checker remembers.
	HistorySize = 100
)

func defaults() options {
	return options{
		timeout:      DefaultTimeout,
		lagThreshold: DefaultLagThreshold,
		logger:       zap.NewNop(),
	}
}

func (o *options) validate() error {
	if o.timeout <= 0 {
		return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidArgument, o.timeout)
	}
	if o.lagThreshold == 0 {
		return fmt.Errorf("%w: lag threshold must be positive", ErrInvalidArgument)
	}
	if o.logger == nil {
		return fmt.Errorf("%w: nil logger", ErrInvalidArgument)
	}
	for name, ep := range o.endpoints {
		if ep == "" {
			return fmt.Errorf("%w: WithEndpoints: empty endpoint for member %q", ErrInvalidArgument, name)
		}
	}
	return nil
}

// WithTimeout bounds each member's probe (status and HTTP checks together). Default 2s.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.timeout = d })
}

// WithLagThreshold sets how far (in raft entries) a reachable member's raft index may
// trail the leader's before it is reported as partitioned. Default 1000.
//
// The members' statuses are read a few milliseconds apart (more when a probe is slow),
// and under load the leader appends thousands of entries a second, so a raw difference
// says little. The lag compared with the threshold is what remains after subtracting
// the entries the cluster committed, at the rate measured between checks, in the
// longest time that can separate the two answers; and a member counts as lagging only
// when that holds in LagChecks consecutive checks.
func WithLagThreshold(entries uint64) Option {
	return optionFunc(func(o *options) { o.lagThreshold = entries })
}

// WithEndpoints maps members to the gRPC endpoint to probe, for clusters whose
// advertised client URLs are not reachable from the checker (behind NAT, a proxy, or a
// test bridge). A key is a member's hexadecimal ID or its name; the ID wins, so members
// that share a name (or have none yet) can still be told apart. Members not in the map
// are probed on their first client URL.
func WithEndpoints(byName map[string]string) Option {
	return optionFunc(func(o *options) {
		o.endpoints = make(map[string]string, len(byName))
		for k, v := range byName {
			o.endpoints[k] = v
		}
	})
}

// WithHTTPClient sets the client for the members' /livez and /readyz endpoints (for
// example one with the cluster's TLS configuration). Members whose client URLs are unix
// sockets are reached through a copy of its transport that dials the socket. Each member
// is reached through a copy of its transport (when that is an *http.Transport), whose
// connections close when the member leaves the cluster or at Close. Default: a client on
// a transport of the Checker's own; the per-member timeout applies either way.
func WithHTTPClient(c *http.Client) Option {
	return optionFunc(func(o *options) { o.httpClient = c })
}

// WithSource replaces where membership, statuses and alarms come from. Default:
// NewEtcdSource(cli).
func WithSource(s StatusSource) Option {
	return optionFunc(func(o *options) { o.source = s })
}

// WithLogger sets the logger. Default zap.NewNop().
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}
