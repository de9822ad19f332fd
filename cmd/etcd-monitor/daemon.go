package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func versionString() string {
	etcd := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "go.etcd.io/etcd/client/v3" {
				etcd = d.Version
			}
		}
	}
	return fmt.Sprintf("etcd-monitor %s (%s, etcd client %s)", version, runtime.Version(), etcd)
}

// run is the whole daemon: main only adds the signals and the exit code. It returns nil
// after a graceful shutdown (ctx ended) and an error naming the problem otherwise.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, o, err := parseArgs(args, stderr)
	switch {
	case err != nil:
		return err
	case o.help:
		return nil
	case o.version:
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	log, err := newLogger(cfg.Logging, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()

	if cfg.Etcd.Embedded {
		if startEmbedded == nil {
			return errNoEmbedded
		}
		node, err := startEmbedded()
		if err != nil {
			return fmt.Errorf("embedded etcd: %w", err)
		}
		defer node.Close()
		cfg.Etcd.Endpoints = node.Endpoints()
		cfg.Etcd.TLS = TLSConfig{}
		log.Info("embedded etcd started", zap.Strings("endpoints", cfg.Etcd.Endpoints))
	}

	// The state file first: a bad one is a startup error whatever etcd's state.
	var st store.Store
	if !o.runBenchmark {
		if st, err = openStore(ctx, cfg, log); err != nil {
			return err
		}
		defer st.Close()
	}

	clusters := append([]ClusterConfig{cfg.Etcd.ClusterConfig}, cfg.Clusters...)
	conns := make([]*connection, 0, len(clusters))
	defer func() {
		for _, c := range conns {
			c.cli.Close()
			c.http.CloseIdleConnections() // before an embedded etcd stops
		}
	}()
	for i, cc := range clusters {
		key := "etcd"
		if i > 0 {
			key = fmt.Sprintf("clusters[%d]", i-1)
		}
		c, err := connect(ctx, cc, key)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		log.Info("connected to etcd", zap.String("cluster", cc.Name), zap.Strings("endpoints", cc.Endpoints), zap.Int("members", c.members))
	}

	if o.runBenchmark {
		return runBenchmark(ctx, cfg, conns[0], stdout, stderr, log)
	}
	return serve(ctx, cfg, conns, st, log)
}

// openStore opens the store the store: block names (bbolt, postgres, memory) or, without
// one, the state file under data_dir, creating the directory when missing, or an
// in-memory store when data_dir is empty. Errors name the key at fault.
func openStore(ctx context.Context, cfg *Config, log *zap.Logger) (store.Store, error) {
	if cfg.Store.Type != "" {
		sc := cfg.Store
		sc.Logger = log.Named("store")
		if sc.Type == store.TypeBolt {
			if err := os.MkdirAll(filepath.Dir(sc.Path), 0o700); err != nil {
				return nil, fmt.Errorf("store.path: %w", err)
			}
		}
		st, err := store.OpenConfig(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		log.Info("store opened", zap.String("type", sc.Type), zap.String("path", sc.Path))
		return st, nil
	}
	dir := cfg.DataDir
	if dir == "" {
		return store.NewMemory(), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir (--data-dir): %w", err)
	}
	st, err := store.Open(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("data_dir (--data-dir): %w", err)
	}
	return st, nil
}

// connection is a client of one cluster and what it was made from.
type connection struct {
	cfg    ClusterConfig
	cli    *clientv3.Client
	client clientv3.Config
	tls    *tls.Config
	// http reaches the members' /metrics, /livez and /readyz: one transport per cluster,
	// shared by its health checker and metric collector, whose kept-alive connections
	// each round reuses.
	http    *http.Client
	members int
}

// monitorReadBuffer and monitorWriteBuffer are the buffers of each of the monitoring
// client's connections: room for a status, a membership list or a probe's answer in one
// read, and for a request in one write. The write buffer is taken from a pool for each
// write and given back after it (grpc.WithSharedWriteBuffer), but all members are probed
// at once, so the pool holds about one per connection.
const (
	monitorReadBuffer  = 8 << 10
	monitorWriteBuffer = 8 << 10
)

// connect makes a client and proves it works: a daemon that cannot reach etcd at
// startup says so and exits rather than serving an empty API.
func connect(ctx context.Context, cc ClusterConfig, key string) (*connection, error) {
	tlsCfg, err := clientTLS(cc.TLS, key)
	if err != nil {
		return nil, err
	}
	ccfg := clientv3.Config{Endpoints: cc.Endpoints, DialTimeout: cc.DialTimeout, TLS: tlsCfg,
		Username: cc.Username, Password: cc.Password, Logger: zap.NewNop()}
	// The monitoring client's connections (one per endpoint, and the collector's probe
	// connection to each member, dialled through it) carry small messages: gRPC's 32 KiB
	// read and write buffers per connection would be most of the daemon's heap with many
	// clusters. Benchmarks get a client of their own, with the defaults.
	mcfg := ccfg
	mcfg.DialOptions = []grpc.DialOption{grpc.WithReadBufferSize(monitorReadBuffer),
		grpc.WithWriteBufferSize(monitorWriteBuffer), grpc.WithSharedWriteBuffer(true)}
	cli, err := clientv3.New(mcfg)
	if err != nil {
		return nil, fmt.Errorf("etcd cluster %q: %w", cc.Name, err)
	}
	tctx, cancel := context.WithTimeout(ctx, cc.DialTimeout)
	defer cancel()
	resp, err := cli.MemberList(tctx, clientv3.WithSerializable())
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("cannot reach etcd cluster %q at %s within %v (%s.endpoints, --endpoints): %w",
			cc.Name, strings.Join(cc.Endpoints, ","), cc.DialTimeout, key, err)
	}
	ccfg.Endpoints = nil // bench connections use the client's endpoints
	hc := &http.Client{Transport: memberhttp.NewTransport(tlsCfg)}
	return &connection{cfg: cc, cli: cli, client: ccfg, tls: tlsCfg, http: hc, members: len(resp.Members)}, nil
}

func newLogger(c LoggingConfig, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("config: logging.level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Format == "console" {
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}

// monitorClusters describes each connection to the monitor.
func monitorClusters(cfg *Config, conns []*connection) []monitor.Cluster {
	out := make([]monitor.Cluster, 0, len(conns))
	for _, c := range conns {
		mc := monitor.Cluster{Name: c.cfg.Name, Client: c.cli,
			Health: []health.Option{health.WithTimeout(cfg.Monitor.CheckTimeout), health.WithHTTPClient(c.http)},
			Metrics: []metrics.Option{metrics.WithTimeout(cfg.Monitor.CheckTimeout), metrics.WithSamples(cfg.Monitor.LatencySamples),
				metrics.WithHTTPClient(c.http), metrics.WithHistorySize(cfg.Monitor.MemoryHistory)},
			Bench: []bench.Option{bench.WithClientConfig(c.client)},
		}
		if len(c.cfg.MemberEndpoints) > 0 {
			mc.Health = append(mc.Health, health.WithEndpoints(c.cfg.MemberEndpoints))
			mc.Metrics = append(mc.Metrics, metrics.WithEndpoints(c.cfg.MemberEndpoints))
		}
		if len(c.cfg.MetricsURLs) > 0 {
			mc.Metrics = append(mc.Metrics, metrics.WithMetricsURLs(c.cfg.MetricsURLs))
		}
		out = append(out, mc)
	}
	return out
}

const unauthenticatedWrites = "api.allow_unauthenticated_writes is true and no API tokens are configured: " +
	"anyone who can reach the API may run benchmarks and maintenance (defragment, compact, snapshot) against etcd and silence alerts"

// serve runs the monitor and the API until ctx ends, then shuts down in order: stop
// accepting, let requests in flight finish, stop the background work.
func serve(ctx context.Context, cfg *Config, conns []*connection, st store.Store, log *zap.Logger) error {
	lim := monitor.BenchmarkLimits{
		Disabled:    cfg.Benchmark.API.Enabled != nil && !*cfg.Benchmark.API.Enabled,
		MaxOps:      cfg.Benchmark.API.MaxOps,
		MaxDuration: cfg.Benchmark.API.MaxDuration,
		// A benchmark answers before the server's write timeout would cut it off.
		Timeout: cfg.API.WriteTimeout * 9 / 10,
		SLO:     cfg.slo(),
	}
	var warnings []string
	switch {
	case len(cfg.API.Auth.Tokens) > 0:
	case cfg.API.AllowUnauthenticatedWrites:
		warnings = append(warnings, unauthenticatedWrites)
		log.Warn(unauthenticatedWrites)
	default:
		log.Info("no API tokens are configured: the API is read-only; requests that change something answer 403 " +
			"(api.auth.tokens, api.allow_unauthenticated_writes)")
	}
	aopts, err := alertOptions(cfg, log)
	if err != nil {
		return err
	}
	switch {
	case cfg.Store.Type == store.TypeMemory || cfg.Store.Type == "" && cfg.DataDir == "":
		log.Warn("no data_dir (--data-dir) and no store: alert state, the notification log, silences and history live in memory; " +
			"a restart re-sends what was sent and forgets resolves")
	case cfg.Store.Type == "":
		log.Info("state file opened", zap.String("path", filepath.Join(cfg.DataDir, stateFile)))
	}
	mopts := cfg.maintenanceOptions() // snapshot_dir, remediation
	if ps, ok := st.(interface{ Stats() postgres.Stats }); ok {
		mopts = append(mopts, monitor.WithStoreStats(func() monitor.StoreStats {
			s := ps.Stats()
			return monitor.StoreStats{Errors: s.Errors, Dropped: s.Dropped, Queued: s.Queued}
		}))
	}
	// On PostgreSQL every daemon is a replica: all monitor and serve, the holder of the
	// alerting lease evaluates and notifies, and the last holder a replica knows of
	// writes history (replica.go says why that leaves no gap when PostgreSQL restarts).
	var rep *replica
	if ps, ok := st.(*postgres.Store); ok {
		ttl := cfg.leaseTTL()
		if rep, err = newReplica(ps, cfg.Replica.ID, ttl, log); err != nil {
			return err
		}
		mopts = append(mopts, monitor.WithStandby(), monitor.WithReplica(rep.status),
			monitor.WithHistoryGate(rep.writesHistory))
		log.Info("replica: standby until it holds the alerting lease", zap.String("id", rep.id), zap.Duration("lease_ttl", ttl))
	}
	svc, err := monitor.New(monitorClusters(cfg, conns), append(mopts,
		monitor.WithStore(st),
		monitor.WithWarnings(warnings...),
		monitor.WithHealthInterval(cfg.Monitor.HealthCheckInterval),
		monitor.WithMetricsInterval(cfg.Monitor.MetricsInterval),
		monitor.WithHistorySize(cfg.Monitor.MemoryHistory),
		monitor.WithAlertOptions(aopts...),
		monitor.WithBenchmarkLimits(lim),
		monitor.WithLogger(log))...)
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	defer svc.Close()

	tlsCfg, err := serverTLS(cfg.API.TLS)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(cfg.API.Host, strconv.Itoa(cfg.API.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s (api.host, api.port): %w", addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{
		Handler:           handler(svc, cfg.API, log),
		ReadTimeout:       cfg.API.ReadTimeout,
		ReadHeaderTimeout: min(cfg.API.ReadTimeout, 10*time.Second),
		WriteTimeout:      cfg.API.WriteTimeout,
		IdleTimeout:       cfg.API.IdleTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}

	var stopBy atomic.Int64 // the shutdown's deadline (Unix ns) once it began
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- svc.Run(runCtx) }()
	repDone := make(chan struct{})
	if rep != nil {
		go func() {
			defer close(repDone)
			rep.run(runCtx, func(ctx, lease context.Context, fenced store.Store) {
				lease, stop := windDown(ctx, lease, cfg.termWindDown(func() (time.Time, bool) {
					by := stopBy.Load()
					return time.Unix(0, by), by != 0
				}))
				defer stop()
				if err := svc.RunAlertsLeased(ctx, lease, fenced); err != nil && !errors.Is(err, monitor.ErrClosed) {
					log.Warn("replica: alert engine", zap.Error(err))
				}
			})
		}()
	} else {
		close(repDone)
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	log.Info("serving API", zap.String("address", ln.Addr().String()), zap.Bool("tls", tlsCfg != nil),
		zap.Strings("clusters", svc.Clusters()), zap.String("version", version))

	select {
	case <-ctx.Done():
		log.Info("shutting down: cancelling benchmarks, draining requests")
		svc.Interrupt()
	case err := <-serveDone:
		stopRun()
		<-runDone
		<-repDone
		return fmt.Errorf("api: %w", err)
	}
	// One deadline for all of it: requests drain, then queued notifications are sent.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.API.ShutdownTimeout)
	defer cancel()
	if by, ok := sctx.Deadline(); ok {
		stopBy.Store(by.UnixNano())
	}
	shutdownErr := srv.Shutdown(sctx)
	if err := <-serveDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("serve", zap.Error(err))
	}
	stopRun()
	<-runDone
	<-repDone // the term's engine closed, the lease released
	// A replica's engine sent what it could when its term ended.
	if rep == nil {
		if err := svc.Alerts().Flush(sctx); err != nil {
			log.Warn("notifications still queued at shutdown (api.shutdown_timeout)", zap.Error(err))
		}
	}
	if err := svc.Close(); err != nil {
		log.Warn("close monitor", zap.Error(err))
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: requests still running after %v (api.shutdown_timeout): %w", cfg.API.ShutdownTimeout, shutdownErr)
	}
	log.Info("stopped")
	return nil
}

// runBenchmark is --run-benchmark: one run, the report on stdout, progress on stderr.
func runBenchmark(ctx context.Context, cfg *Config, conn *connection, stdout, stderr io.Writer, log *zap.Logger) error {
	r, err := bench.New(conn.cli, bench.WithClientConfig(conn.client), bench.WithProgress(stderr, time.Second), bench.WithLogger(log))
	if err != nil {
		return err
	}
	res, err := r.Run(ctx, cfg.benchConfig())
	if err != nil {
		return fmt.Errorf("benchmark: %w", err)
	}
	slo := cfg.slo().Check(res)
	var cmp *bench.Comparison
	if path := cfg.Benchmark.Baseline; path != "" {
		base, err := bench.LoadBaseline(path)
		if err != nil {
			return err
		}
		c, err := bench.Compare(base, res, cfg.Benchmark.Tolerance)
		if err != nil {
			return fmt.Errorf("benchmark.baseline: %w", err)
		}
		cmp = &c
	}
	if path := cfg.Benchmark.SaveBaseline; path != "" {
		if err := bench.SaveBaseline(path, res); err != nil {
			return err
		}
	}
	if cfg.Benchmark.Output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Result     *bench.Result     `json:"result"`
			SLO        bench.SLOReport   `json:"slo"`
			Comparison *bench.Comparison `json:"comparison,omitempty"`
		}{res, slo, cmp}); err != nil {
			return err
		}
	} else {
		if err := res.WriteText(stdout); err != nil {
			return err
		}
		fmt.Fprint(stdout, slo)
		if cmp != nil {
			fmt.Fprintf(stdout, "Against baseline %s (tolerance %.0f%%):\n%s", cfg.Benchmark.Baseline, 100*cmp.Tolerance, cmp)
		}
	}
	if cfg.Benchmark.EnforceSLO {
		if !slo.Pass {
			return errors.New("benchmark: SLO not met")
		}
		if cmp != nil && cmp.Regressed {
			return fmt.Errorf("benchmark: regression against the baseline in %s", strings.Join(cmp.Regressions, ", "))
		}
	}
	return nil
}
