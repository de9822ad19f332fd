package metrics

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Option configures a Collector.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// Defaults, in one place.
const (
	// DefaultSamples is how many latency probes each member gets per collection.
	DefaultSamples = 10
	// DefaultTimeout bounds each member's collection (probes and scrape).
	DefaultTimeout = 5 * time.Second
	// DefaultHistorySize is how many snapshots a Collector keeps.
	DefaultHistorySize = 1000
	// DefaultConcurrency is how many members a Collect collects at once.
	DefaultConcurrency = 8
)

type options struct {
	samples     int
	timeout     time.Duration
	historySize int
	concurrency int
	endpoints   map[string]string
	metricsURLs map[string]string
	httpClient  *http.Client
	registerer  prometheus.Registerer
	logger      *zap.Logger
}

func defaults() options {
	return options{
		samples:     DefaultSamples,
		timeout:     DefaultTimeout,
		historySize: DefaultHistorySize,
		concurrency: DefaultConcurrency,
		logger:      zap.NewNop(),
	}
}

func (o *options) validate() error {
	switch {
	case o.samples < 1 || o.samples > 1000:
		return fmt.Errorf("%w: samples %d not in [1, 1000]", ErrInvalidArgument, o.samples)
	case o.timeout <= 0:
		return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidArgument, o.timeout)
	case o.historySize < 1:
		return fmt.Errorf("%w: history size %d must be positive", ErrInvalidArgument, o.historySize)
	case o.concurrency < 1:
		return fmt.Errorf("%w: concurrency %d must be positive", ErrInvalidArgument, o.concurrency)
	case o.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidArgument)
	}
	for name, ep := range o.endpoints {
		if ep == "" {
			return fmt.Errorf("%w: empty endpoint for member %q", ErrInvalidArgument, name)
		}
	}
	for name, u := range o.metricsURLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("%w: metrics URL %q for member %q is not an http(s) URL", ErrInvalidArgument, u, name)
		}
	}
	return nil
}

// WithSamples sets how many latency probes each member gets per collection. Default 10.
func WithSamples(n int) Option { return optionFunc(func(o *options) { o.samples = n }) }

// WithTimeout bounds each member's collection, probes and scrape together. Default 5s.
func WithTimeout(d time.Duration) Option { return optionFunc(func(o *options) { o.timeout = d }) }

// WithHistorySize sets how many snapshots History keeps. Default 1000.
func WithHistorySize(n int) Option { return optionFunc(func(o *options) { o.historySize = n }) }

// WithConcurrency sets how many members one Collect probes and scrapes at once. Default
// 8. Each member in flight holds at most a 64 KiB read buffer, whatever its /metrics
// serves, so this bounds goroutines and bursts of CPU more than memory.
func WithConcurrency(n int) Option { return optionFunc(func(o *options) { o.concurrency = n }) }

// WithEndpoints maps members to the gRPC endpoint to probe, for members whose advertised
// client URLs are not reachable from here. A key is a member's hexadecimal ID or its
// name; the ID wins. Others are probed on their first client URL. Give a
// health.Checker of the same client the same map, so that both reach a member over their
// one shared connection.
func WithEndpoints(byName map[string]string) Option {
	return optionFunc(func(o *options) { o.endpoints = clone(byName) })
}

// WithMetricsURLs maps member names to the URL of their Prometheus endpoint, for members
// started with --listen-metrics-urls. Others are scraped at their first http(s) client
// URL + "/metrics".
func WithMetricsURLs(byName map[string]string) Option {
	return optionFunc(func(o *options) { o.metricsURLs = clone(byName) })
}

// WithHTTPClient sets the client used to scrape /metrics (for example one with the
// cluster's TLS configuration). Each member is scraped through a copy of its transport
// (when that is an *http.Transport), whose connections close when the member leaves the
// cluster or at Close. Default: a client on a transport of the Collector's own
// (memberhttp's: keep-alive sized for members). The per-member timeout applies either
// way.
func WithHTTPClient(c *http.Client) Option { return optionFunc(func(o *options) { o.httpClient = c }) }

// WithRegisterer registers the Collector's exporter (see Exporter) with r in New, and
// unregisters it in Close. The global registry is never used unless passed here.
func WithRegisterer(r prometheus.Registerer) Option {
	return optionFunc(func(o *options) { o.registerer = r })
}

// WithLogger sets the logger. Default zap.NewNop().
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
