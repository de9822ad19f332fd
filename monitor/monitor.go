package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// Cluster is one cluster a Service monitors.
type Cluster struct {
	// Name identifies the cluster in the API (?cluster=NAME) and in metric labels.
	Name string
	// Client reaches the cluster; it stays the caller's to close.
	Client *clientv3.Client
	// Health, Metrics and Bench are passed to the cluster's health.Checker,
	// metrics.Collector and bench.Runner. A cluster's own alert thresholds are an alert
	// option: alert.WithClusterThresholds(name, t) in WithAlertOptions.
	Health  []health.Option
	Metrics []metrics.Option
	Bench   []bench.Option
}

var clusterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Service monitors clusters on a schedule and serves what it learnt. Use New.
type Service struct {
	opts       options
	clusters   []*clusterState
	byName     map[string]*clusterState
	registry   *prometheus.Registry
	own        *collector
	alerts     *alert.Manager
	mux        *http.ServeMux
	openapi    []byte               // the OpenAPI document, built once by New
	heavy      chan struct{}        // a slot per history request in flight
	storeStats prometheus.Collector // nil without a store
	history    *recorder            // writes every cluster's history to the store; nil without one
	started    time.Time

	mu          sync.Mutex
	running     bool
	closed      bool
	stop        chan struct{} // closed by Close; ends Run
	interrupted chan struct{} // closed by Interrupt and Close; ends benchmarks in flight
	wg          sync.WaitGroup

	benchMu sync.Mutex // one benchmark at a time
	engine  engine     // a replica's alert engine (engine.go)

	maint *maintRunner // maintenance_ops.go
}

// New returns a Service of the given clusters (at least one, names unique). It starts
// nothing: call Run.
func New(clusters []Cluster, opts ...Option) (*Service, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(clusters) == 0 {
		return nil, fmt.Errorf("%w: no cluster to monitor", ErrInvalidArgument)
	}
	reg := o.registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Service{
		opts:     o,
		byName:   map[string]*clusterState{},
		registry: reg,
		started:  time.Now(),
		stop:     make(chan struct{}),
		heavy:    make(chan struct{}, o.heavyRequests),

		interrupted: make(chan struct{}),
	}
	aopts := append([]alert.Option{alert.WithLogger(o.logger.Named("alert")), alert.WithRegisterer(reg)}, s.alertOptions(o.store)...)
	if o.standby {
		// A standby's own manager never evaluates or notifies (RunAlerts brings the one
		// that does): no receivers, no store, its metrics on a registry of its own.
		aopts = []alert.Option{alert.WithLogger(zap.NewNop()), alert.WithRegisterer(prometheus.NewRegistry())}
	}
	alerts, err := alert.New(aopts...)
	if err != nil {
		return nil, fmt.Errorf("monitor: alerts: %w", err)
	}
	s.alerts = alerts
	if o.store != nil {
		s.history = &recorder{st: o.store, gate: o.historyGate, log: o.logger}
	}
	for _, c := range clusters {
		st, err := s.newCluster(c)
		if err != nil {
			s.closeClusters()
			return nil, err
		}
		s.clusters = append(s.clusters, st)
		s.byName[c.Name] = st
	}
	if s.maint, err = newMaintRunner(s, clusters); err != nil { // maintenance_ops.go
		s.closeClusters()
		return nil, err
	}
	s.own = &collector{s: s}
	if err := reg.Register(s.own); err != nil {
		s.closeClusters()
		return nil, fmt.Errorf("monitor: register collector: %w", err)
	}
	if o.store != nil || o.storeStats != nil {
		s.storeStats = storeCollector{stats: o.storeStats, rec: s.history}
		if err := reg.Register(s.storeStats); err != nil {
			reg.Unregister(s.own)
			s.closeClusters()
			return nil, fmt.Errorf("monitor: register store collector: %w", err)
		}
	}
	s.mux = s.routes()
	doc, _ := s.openAPI() // what it cannot describe is a test failure, not a user's
	if s.openapi, err = json.Marshal(doc); err != nil {
		s.closeClusters()
		return nil, fmt.Errorf("monitor: OpenAPI document: %w", err)
	}
	return s, nil
}

func (s *Service) newCluster(c Cluster) (*clusterState, error) {
	if !clusterName.MatchString(c.Name) {
		return nil, fmt.Errorf("%w: cluster name %q (want letters, digits, '.', '_', '-')", ErrInvalidArgument, c.Name)
	}
	if _, dup := s.byName[c.Name]; dup {
		return nil, fmt.Errorf("%w: duplicate cluster name %q", ErrInvalidArgument, c.Name)
	}
	if c.Client == nil {
		return nil, fmt.Errorf("%w: cluster %q: nil client", ErrInvalidArgument, c.Name)
	}
	log := s.opts.logger.With(zap.String("cluster", c.Name))
	checker, err := health.New(c.Client, append([]health.Option{health.WithLogger(log)}, c.Health...)...)
	if err != nil {
		return nil, fmt.Errorf("monitor: cluster %q: %w", c.Name, err)
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"cluster": c.Name}, s.registry)
	collector, err := metrics.New(c.Client, append([]metrics.Option{metrics.WithLogger(log), metrics.WithRegisterer(reg)}, c.Metrics...)...)
	if err != nil {
		checker.Close()
		return nil, fmt.Errorf("monitor: cluster %q: %w", c.Name, err)
	}
	runner, err := bench.New(c.Client, append([]bench.Option{bench.WithLogger(log)}, c.Bench...)...)
	if err != nil {
		checker.Close()
		collector.Close()
		return nil, fmt.Errorf("monitor: cluster %q: %w", c.Name, err)
	}
	st := &clusterState{name: c.Name, checker: checker, collector: collector, svc: s, bench: runner,
		log: log, historySize: s.opts.historySize, recorder: s.history}
	return st, nil
}

// ServeHTTP serves the REST API and /metrics from what the Service has learnt; no
// request waits on etcd, except a benchmark, which is a run against it.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Registry returns the Prometheus registry /metrics serves.
func (s *Service) Registry() *prometheus.Registry { return s.registry }

// Clusters returns the names of the monitored clusters, in the order given to New.
func (s *Service) Clusters() []string {
	names := make([]string, len(s.clusters))
	for i, c := range s.clusters {
		names[i] = c.name
	}
	return names
}

// Run checks health and collects metrics of every cluster, at once and then every
// interval, and evaluates the alert rules after each, until ctx ends or Close is
// called; it then waits for the checks in flight and returns nil. It returns ErrRunning
// when another Run is going and ErrClosed after Close.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.running:
		s.mu.Unlock()
		return ErrRunning
	}
	s.running = true
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		s.wg.Done()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	var wg sync.WaitGroup
	for _, c := range s.clusters {
		wg.Go(func() {
			c.healthLoop(ctx, s.opts.healthInterval)
		})
		wg.Go(func() {
			every(ctx, s.opts.metricsInterval, func(ctx context.Context) { c.collectMetrics(ctx, s.opts.metricsInterval) })
		})
	}
	s.maint.runRemediation(ctx, &wg) // maintenance_ops.go
	wg.Wait()
	s.history.flush()
	return nil
}

// Refresh checks health and collects metrics of every cluster once, now, and evaluates
// the alert rules, returning when all of that is done and its history is written. It is for callers that want the
// API to have something to say before Run's first round (a daemon at startup, a test).
func (s *Service) Refresh(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	var wg sync.WaitGroup
	for _, c := range s.clusters {
		wg.Go(func() { c.checkHealth(ctx, s.opts.healthInterval) })
		wg.Go(func() { c.collectMetrics(ctx, s.opts.metricsInterval) })
	}
	wg.Wait()
	s.history.flush()
	return ctx.Err()
}

// every calls fn at once and then every interval until ctx ends. A call that overruns
// the interval delays the next one rather than overlapping it.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ConfirmAfter is how soon a check follows one that found the cluster without a leader
// or a quorum, or could not check it, when the health interval is longer: an outage is
// confirmed (and a rule's short for met) within seconds, and an election caught
// mid-check is seen over before it pages.
const ConfirmAfter = 5 * time.Second

// healthLoop checks the cluster at once and then every interval until ctx ends, or
// ConfirmAfter after the end of a check that found it degraded. A check that overruns the interval
// delays the next one rather than overlapping it.
func (c *clusterState) healthLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		degraded := c.checkHealth(ctx, interval)
		next := max(interval-time.Since(start), 0)
		if degraded {
			next = min(next, ConfirmAfter) // counted from the check's end: a for of ConfirmAfter is met
		}
		t.Reset(next)
	}
}

// Interrupt cancels the benchmarks in flight at once (their requests answer 503) and
// refuses new ones, while Run and every read carry on until Close. A daemon calls it
// when a shutdown begins, so that draining requests does not wait out a benchmark. It is
// idempotent.
func (s *Service) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interruptLocked()
}

func (s *Service) interruptLocked() {
	select {
	case <-s.interrupted:
	default:
		close(s.interrupted)
	}
}

// Close stops Run and any benchmark in flight, waits for them, then closes the alert
// manager — which sends what is queued within its shutdown timeout
// (alert.WithShutdownTimeout) — and the collectors. It is idempotent. The clusters'
// clients and the store stay the caller's.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.interruptLocked()
	s.mu.Unlock()
	s.wg.Wait()
	s.history.close()
	s.registry.Unregister(s.own)
	if s.storeStats != nil {
		s.registry.Unregister(s.storeStats)
	}
	return s.closeClusters()
}

func (s *Service) closeClusters() error {
	errs := []error{s.alerts.Close(), s.closeEngine()}
	for _, c := range s.clusters {
		errs = append(errs, c.collector.Close(), c.checker.Close())
	}
	if s.maint != nil {
		errs = append(errs, s.maint.close())
	}
	return errors.Join(errs...)
}

// Alerts returns the Service's alert manager, for what the API does not cover. It stays
// the Service's: Close closes it. On a standby (WithStandby) it is the manager of the
// current term, or one that never evaluates or notifies between terms.
func (s *Service) Alerts() *alert.Manager {
	if m := s.alertManager(); m != nil {
		return m
	}
	return s.alerts
}

// cluster returns the named cluster, or the first one when name is empty.
func (s *Service) cluster(name string) (*clusterState, bool) {
	if name == "" {
		return s.clusters[0], true
	}
	c, ok := s.byName[name]
	return c, ok
}
