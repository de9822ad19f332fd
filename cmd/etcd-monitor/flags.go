package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// cliOptions are the flags that are not configuration: what to do rather than how.
type cliOptions struct {
	configPath   string
	version      bool
	runBenchmark bool
	help         bool
}

// parseArgs reads the flags and the YAML file they name, and returns the configuration:
// defaults, then the file, then the flags that were set.
func parseArgs(args []string, stderr io.Writer) (*Config, cliOptions, error) {
	def := defaultConfig()
	var o cliOptions
	fs := flag.NewFlagSet("etcd-monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: etcd-monitor [flags]\n\nMonitors etcd clusters and serves a REST API and Prometheus metrics.\nFlags override the --config file (see config.example.yaml).\n\n")
		fs.PrintDefaults()
	}

	var (
		endpoints      = fs.String("endpoints", strings.Join(def.Etcd.Endpoints, ","), "comma-separated etcd endpoints")
		dialTimeout    = fs.Duration("dial-timeout", def.Etcd.DialTimeout, "timeout to connect to etcd")
		cert           = fs.String("cert", "", "client certificate for etcd (PEM)")
		key            = fs.String("key", "", "client key for etcd (PEM)")
		cacert         = fs.String("cacert", "", "CA bundle that signs etcd's certificates (PEM)")
		embedded       = fs.Bool("embedded", false, "start a single-node etcd inside the daemon and monitor it (a binary built with -tags embedded_etcd)")
		apiHost        = fs.String("api-host", def.API.Host, "address the API listens on")
		apiPort        = fs.Int("api-port", def.API.Port, "port the API listens on (0: any free port)")
		apiCert        = fs.String("api-cert", "", "TLS certificate for the API listener (PEM)")
		apiKey         = fs.String("api-key", "", "TLS key for the API listener (PEM)")
		healthInterval = fs.Duration("health-check-interval", def.Monitor.HealthCheckInterval, "how often to check cluster health")
		metricsInterv  = fs.Duration("metrics-interval", def.Monitor.MetricsInterval, "how often to collect metrics")
		maxLatency     = fs.Int("max-latency-ms", def.Thresholds.MaxLatencyMS, "alert when probe latency p99 exceeds this many milliseconds (0: alerts.thresholds.request_latency_p99)")
		maxDBSize      = fs.Int("max-db-size-mb", def.Thresholds.MaxDBSizeMB, "alert when a member's database exceeds this many MiB (0: off)")
		minNodes       = fs.Int("min-available-nodes", def.Thresholds.MinAvailableNodes, "alert when fewer members are available (0: off)")
		maxLeaderChg   = fs.Int("max-leader-changes", 3, "alert when the leader changes more often within the window (default: alerts.thresholds.leader_changes - 1)")
		dataDir        = fs.String("data-dir", def.DataDir, "directory of the state file (alert state, notifications, silences, benchmarks); empty: in memory")
		benchType      = fs.String("benchmark-type", def.Benchmark.Type, "benchmark workload: write, read, mixed, range, delete, txn")
		benchOps       = fs.Int("benchmark-ops", 0, "benchmark operations (default 10000 unless a duration is set)")
		benchDuration  = fs.Duration("benchmark-duration", 0, "benchmark duration (instead of or with --benchmark-ops)")
		benchOutput    = fs.String("benchmark-output", def.Benchmark.Output, "benchmark report format: text or json")
		logLevel       = fs.String("log-level", def.Logging.Level, "log level: debug, info, warn, error")
	)
	fs.StringVar(&o.configPath, "config", "", "YAML configuration file")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.BoolVar(&o.runBenchmark, "run-benchmark", false, "run one benchmark, print the report and exit")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			o.help = true
			return nil, o, nil
		}
		return nil, o, err
	}
	if fs.NArg() > 0 {
		return nil, o, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if o.version {
		return nil, o, nil
	}

	cfg := defaultConfig()
	if o.configPath != "" {
		if err := loadConfig(o.configPath, &cfg); err != nil {
			return nil, o, err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	apply := func(name string, fn func()) {
		if set[name] {
			fn()
		}
	}
	apply("endpoints", func() { cfg.Etcd.Endpoints = splitList(*endpoints) })
	apply("dial-timeout", func() { cfg.Etcd.DialTimeout = *dialTimeout })
	apply("cert", func() { cfg.Etcd.TLS.Cert = *cert })
	apply("key", func() { cfg.Etcd.TLS.Key = *key })
	apply("cacert", func() { cfg.Etcd.TLS.CA = *cacert })
	apply("embedded", func() { cfg.Etcd.Embedded = *embedded })
	apply("api-host", func() { cfg.API.Host = *apiHost })
	apply("api-port", func() { cfg.API.Port = *apiPort })
	apply("api-cert", func() { cfg.API.TLS.Cert = *apiCert })
	apply("api-key", func() { cfg.API.TLS.Key = *apiKey })
	apply("health-check-interval", func() { cfg.Monitor.HealthCheckInterval = *healthInterval })
	apply("metrics-interval", func() { cfg.Monitor.MetricsInterval = *metricsInterv })
	apply("max-latency-ms", func() { cfg.Thresholds.MaxLatencyMS = *maxLatency })
	apply("max-db-size-mb", func() { cfg.Thresholds.MaxDBSizeMB = *maxDBSize })
	apply("min-available-nodes", func() { cfg.Thresholds.MinAvailableNodes = *minNodes })
	apply("max-leader-changes", func() { cfg.Thresholds.MaxLeaderChanges = maxLeaderChg })
	apply("data-dir", func() { cfg.DataDir = *dataDir })
	apply("benchmark-type", func() { cfg.Benchmark.Type = *benchType })
	apply("benchmark-ops", func() { cfg.Benchmark.Ops = *benchOps })
	apply("benchmark-duration", func() { cfg.Benchmark.Duration = *benchDuration })
	apply("benchmark-output", func() { cfg.Benchmark.Output = *benchOutput })
	apply("log-level", func() { cfg.Logging.Level = *logLevel })

	if err := cfg.validate(); err != nil {
		return nil, o, flagName(err, set)
	}
	return &cfg, o, nil
}

// flagName says which flag set a bad value, when a flag did: the operator typed the
// flag, not the key.
func flagName(err error, set map[string]bool) error {
	var ke *keyError
	if !errors.As(err, &ke) {
		return err
	}
	for flagName, key := range flagKeys {
		if set[flagName] && (ke.key == key || strings.HasPrefix(ke.key, key+"[")) {
			return fmt.Errorf("--%s: %s", flagName, ke.reason)
		}
	}
	return err
}

var flagKeys = map[string]string{
	"endpoints": "etcd.endpoints", "dial-timeout": "etcd.dial_timeout", "cert": "etcd.tls.cert", "key": "etcd.tls.key",
	"cacert": "etcd.tls.ca", "api-host": "api.host", "api-port": "api.port", "api-cert": "api.tls.cert", "api-key": "api.tls.key",
	"health-check-interval": "monitor.health_check_interval", "metrics-interval": "monitor.metrics_interval",
	"max-latency-ms": "thresholds.max_latency_ms", "max-db-size-mb": "thresholds.max_db_size_mb",
	"min-available-nodes": "thresholds.min_available_nodes", "max-leader-changes": "thresholds.max_leader_changes",
	"benchmark-type": "benchmark.type", "benchmark-ops": "benchmark.ops", "benchmark-duration": "benchmark.duration",
	"benchmark-output": "benchmark.output", "log-level": "logging.level", "data-dir": "data_dir",
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
