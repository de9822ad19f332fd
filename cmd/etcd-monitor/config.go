package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// Config is the daemon's configuration: the YAML file (config.example.yaml documents
// every key), then the flags on top of it.
type Config struct {
	Etcd       EtcdConfig      `yaml:"etcd"`
	Clusters   []ClusterConfig `yaml:"clusters"`
	API        APIConfig       `yaml:"api"`
	Monitor    MonitorConfig   `yaml:"monitor"`
	Thresholds Thresholds      `yaml:"thresholds"`
	Alerts     AlertsConfig    `yaml:"alerts"`
	Benchmark  BenchConfig     `yaml:"benchmark"`
	Logging    LoggingConfig   `yaml:"logging"`
	// Maintenance is the maintenance API's settings (see the end of this file).
	Maintenance MaintenanceConfig `yaml:"maintenance"`
	// DataDir holds the state file (alert state, notification log, silences, benchmark
	// results). Empty: state lives in memory and a restart forgets it.
	DataDir string `yaml:"data_dir"`
	// Store chooses where state and history live: bbolt under data_dir (the default),
	// PostgreSQL (shared by replicas), or memory.
	Store store.Config `yaml:"store"`
	// Replica names this daemon among replicas sharing a PostgreSQL store.
	Replica ReplicaConfig `yaml:"replica"`
}

// stateFile is the name of the state file under data_dir.
const stateFile = "etcd-monitor.db"

// ClusterConfig is how to reach one cluster.
type ClusterConfig struct {
	Name        string        `yaml:"name"`
	Endpoints   []string      `yaml:"endpoints"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	Username    string        `yaml:"username"`
	Password    string        `yaml:"password"`
	TLS         TLSConfig     `yaml:"tls"`
	// MemberEndpoints and MetricsURLs override, by member name, where members are probed
	// and scraped, for members whose advertised URLs are not reachable from here.
	MemberEndpoints map[string]string `yaml:"member_endpoints"`
	MetricsURLs     map[string]string `yaml:"metrics_urls"`
	// Thresholds override alerts.thresholds for this cluster: only the keys given.
	Thresholds yaml.Node `yaml:"thresholds"`
	// Routes are routes for this cluster's alerts only, tried before alerts.route's.
	Routes []*alert.Route `yaml:"routes"`
	// Remediation is what the daemon does by itself about this cluster's alerts; off
	// unless set (see the maintenance block at the end of this file).
	Remediation RemediationConfig `yaml:"remediation"`
}

// EtcdConfig is the main cluster, plus the embedded mode.
type EtcdConfig struct {
	ClusterConfig `yaml:",inline"`
	// Embedded starts a single-node etcd inside the daemon and monitors it.
	Embedded bool `yaml:"embedded"`
}

// TLSConfig is a client certificate and the CA that signs the servers'.
type TLSConfig struct {
	Cert               string `yaml:"cert"`
	Key                string `yaml:"key"`
	CA                 string `yaml:"ca"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// ServerTLSConfig is the API listener's certificate; ClientCA turns on mutual TLS.
type ServerTLSConfig struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"`
}

// APIConfig is the REST API server.
type APIConfig struct {
	Host            string          `yaml:"host"`
	Port            int             `yaml:"port"`
	TLS             ServerTLSConfig `yaml:"tls"`
	ReadTimeout     time.Duration   `yaml:"read_timeout"`
	WriteTimeout    time.Duration   `yaml:"write_timeout"`
	IdleTimeout     time.Duration   `yaml:"idle_timeout"`
	ShutdownTimeout time.Duration   `yaml:"shutdown_timeout"`
	CORSOrigins     []string        `yaml:"cors_origins"`
	RequestLog      *bool           `yaml:"request_log"`
	Auth            AuthConfig      `yaml:"auth"`
	// AllowUnauthenticatedWrites lets requests without a token change things (run
	// benchmarks, silence alerts) when no tokens are configured. Off by default: then
	// such requests answer 403.
	AllowUnauthenticatedWrites bool `yaml:"allow_unauthenticated_writes"`
}

// AuthConfig lists bearer tokens; with none, the API may be read by anyone and changed
// by no one (unless api.allow_unauthenticated_writes).
type AuthConfig struct {
	Tokens []TokenConfig `yaml:"tokens"`
}

// TokenConfig is one bearer token and its role.
type TokenConfig struct {
	Name      string `yaml:"name"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	Role      string `yaml:"role"`
}

// Roles.
const (
	RoleReadOnly = "read-only"
	RoleAdmin    = "admin"
)

// MonitorConfig is the schedule.
type MonitorConfig struct {
	HealthCheckInterval time.Duration `yaml:"health_check_interval"`
	MetricsInterval     time.Duration `yaml:"metrics_interval"`
	CheckTimeout        time.Duration `yaml:"check_timeout"`
	LatencySamples      int           `yaml:"latency_samples"`
	// MemoryHistory is how many metric snapshots and health checks each cluster keeps in
	// memory. The API reads history from the store (every daemon has one); memory only
	// answers when the store cannot be read. Alert rules keep the windows they read
	// (up to alerts.thresholds.growth_window) on their own, whatever this is.
	MemoryHistory int `yaml:"memory_history"`
}

// DefaultMemoryHistory is monitor.memory_history's default: 5 minutes of metrics and 15
// of health checks at the default intervals, no more than the alert rules keep of whole
// snapshots (6 minutes), which share them.
const DefaultMemoryHistory = 30

// Thresholds are the operator's limits of the first daemon, kept working: those that
// are set override alerts.thresholds; MaxDBSizeMB and MinAvailableNodes are rules of
// their own.
type Thresholds struct {
	// MaxLatencyMS overrides alerts.thresholds.request_latency_p99 when not 0.
	MaxLatencyMS      int `yaml:"max_latency_ms"`
	MaxDBSizeMB       int `yaml:"max_db_size_mb"`
	MinAvailableNodes int `yaml:"min_available_nodes"`
	// MaxLeaderChanges, when set, is alerts.thresholds.leader_changes minus one.
	MaxLeaderChanges *int `yaml:"max_leader_changes"`
	// LeaderChangesIn overrides alerts.thresholds.leader_changes_window when not 0.
	LeaderChangesIn time.Duration `yaml:"leader_changes_window"`
}

// AlertsConfig is how alerts are evaluated and where they go: alert.Config (route,
// receivers, inhibit_rules, thresholds, cluster_thresholds, rules) plus the channels of
// the first daemon, each of which becomes a receiver of every alert.
type AlertsConfig struct {
	// DedupWindow, when set, is the root route's repeat_interval (kept working).
	DedupWindow  time.Duration    `yaml:"dedup_window"`
	Console      bool             `yaml:"console"`
	Webhooks     []WebhookConfig  `yaml:"webhooks"`
	Slack        *SlackConfig     `yaml:"slack"`
	PagerDuty    *PagerDutyConfig `yaml:"pagerduty"`
	Email        *EmailConfig     `yaml:"email"`
	alert.Config `yaml:",inline"`
}

// WebhookConfig is one Alertmanager-style webhook receiver.
type WebhookConfig struct {
	Name    string            `yaml:"name"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
}

// SlackConfig is a Slack incoming webhook.
type SlackConfig struct {
	WebhookURL string `yaml:"webhook_url"`
	Channel    string `yaml:"channel"`
}

// PagerDutyConfig is a PagerDuty Events API v2 integration.
type PagerDutyConfig struct {
	RoutingKey string `yaml:"routing_key"`
	URL        string `yaml:"url"`
}

// EmailConfig is an SMTP relay.
type EmailConfig struct {
	Addr           string   `yaml:"addr"`
	From           string   `yaml:"from"`
	To             []string `yaml:"to"`
	Username       string   `yaml:"username"`
	Password       string   `yaml:"password"`
	AllowPlaintext bool     `yaml:"allow_plaintext"`
}

// BenchConfig is --run-benchmark's workload and the API benchmark's limits.
type BenchConfig struct {
	Type         string         `yaml:"type"`
	Ops          int            `yaml:"ops"`
	Duration     time.Duration  `yaml:"duration"`
	Connections  int            `yaml:"connections"`
	Clients      int            `yaml:"clients"`
	KeySize      int            `yaml:"key_size"`
	ValueSize    int            `yaml:"value_size"`
	Rate         float64        `yaml:"rate"`
	ReadRatio    float64        `yaml:"read_ratio"`
	TxnOps       int            `yaml:"txn_ops"`
	RangeLimit   int            `yaml:"range_limit"`
	TargetLeader bool           `yaml:"target_leader"`
	Consistency  string         `yaml:"consistency"`
	Output       string         `yaml:"output"`
	Baseline     string         `yaml:"baseline"`
	SaveBaseline string         `yaml:"save_baseline"`
	Tolerance    float64        `yaml:"tolerance"`
	EnforceSLO   bool           `yaml:"enforce_slo"`
	SLO          SLOConfig      `yaml:"slo"`
	API          BenchAPIConfig `yaml:"api"`
}

// SLOConfig is the objectives a benchmark is checked against.
type SLOConfig struct {
	MinReadThroughput  float64       `yaml:"min_read_throughput"`
	MinWriteThroughput float64       `yaml:"min_write_throughput"`
	MaxP99             time.Duration `yaml:"max_p99"`
	MaxWriteP99        time.Duration `yaml:"max_write_p99"`
	MaxReadP99         time.Duration `yaml:"max_read_p99"`
	MaxErrorRate       float64       `yaml:"max_error_rate"`
}

// BenchAPIConfig limits POST /api/v1/performance/benchmark.
type BenchAPIConfig struct {
	Enabled     *bool         `yaml:"enabled"`
	MaxOps      int           `yaml:"max_ops"`
	MaxDuration time.Duration `yaml:"max_duration"`
}

// LoggingConfig is the daemon's own log.
type LoggingConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// defaultConfig is every default in one place.
func defaultConfig() Config {
	slo := bench.DefaultSLO()
	return Config{
		Etcd: EtcdConfig{ClusterConfig: ClusterConfig{Name: "default", Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second}},
		API: APIConfig{
			Host: "0.0.0.0", Port: 8080,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
			ShutdownTimeout: 30 * time.Second,
		},
		Monitor: MonitorConfig{HealthCheckInterval: 30 * time.Second, MetricsInterval: 10 * time.Second,
			CheckTimeout: 2 * time.Second, LatencySamples: 10, MemoryHistory: DefaultMemoryHistory},
		Thresholds: Thresholds{MaxDBSizeMB: 8192, MinAvailableNodes: 2},
		Alerts:     AlertsConfig{Console: true},
		Benchmark: BenchConfig{Type: "mixed", Connections: 10, Clients: 10, KeySize: 32, ValueSize: 256,
			ReadRatio: 0.7, Consistency: "linearizable", Output: "text", Tolerance: 0.1,
			SLO: SLOConfig{MinReadThroughput: slo.MinReadThroughput, MinWriteThroughput: slo.MinWriteThroughput, MaxP99: slo.MaxP99,
				MaxWriteP99: slo.MaxWriteP99, MaxReadP99: slo.MaxReadP99},
			API: BenchAPIConfig{MaxOps: 1000000, MaxDuration: 20 * time.Second}},
		Logging: LoggingConfig{Level: "info", Format: "json"},
	}
}

// loadConfig reads a YAML file over the defaults. Unknown keys are errors, so a typo
// does not silently leave a default in place.
func loadConfig(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var root yaml.Node
		if yaml.Unmarshal(b, &root) == nil {
			if key, line, merr := badMatcher(&root, ""); merr != nil {
				return fmt.Errorf("config %s: %s (line %d): %v", path, key, line, merr)
			}
		}
		return fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// badMatcher finds the first label matcher (under a key ending in "matchers") that does
// not parse, and returns its key, such as alerts.route.routes[0].matchers[1], and line:
// the decoder's own error does not say where it is.
func badMatcher(n *yaml.Node, key string) (string, int, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k, l, err := badMatcher(c, key); err != nil {
				return k, l, err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			name, v := n.Content[i].Value, n.Content[i+1]
			sub := name
			if key != "" {
				sub = key + "." + name
			}
			if strings.HasSuffix(name, "matchers") && v.Kind == yaml.SequenceNode {
				for j, m := range v.Content {
					if m.Kind != yaml.ScalarNode {
						continue
					}
					if _, err := alert.ParseMatcher(m.Value); err != nil {
						return fmt.Sprintf("%s[%d]", sub, j), m.Line, err
					}
				}
				continue
			}
			if k, l, err := badMatcher(v, sub); err != nil {
				return k, l, err
			}
		}
	case yaml.SequenceNode:
		for j, c := range n.Content {
			if k, l, err := badMatcher(c, fmt.Sprintf("%s[%d]", key, j)); err != nil {
				return k, l, err
			}
		}
	}
	return "", 0, nil
}

// keyError names the configuration key at fault.
type keyError struct {
	key, reason string
}

func (e *keyError) Error() string { return fmt.Sprintf("config: %s: %s", e.key, e.reason) }

func bad(key, format string, args ...any) error {
	return &keyError{key: key, reason: fmt.Sprintf(format, args...)}
}

// validate checks every key and names the first one at fault.
func (c *Config) validate() error {
	if !c.Etcd.Embedded {
		if err := c.Etcd.ClusterConfig.validate("etcd"); err != nil {
			return err
		}
	}
	names := map[string]bool{c.Etcd.Name: true}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		key := fmt.Sprintf("clusters[%d]", i)
		if cl.DialTimeout == 0 {
			cl.DialTimeout = c.Etcd.DialTimeout
		}
		if err := cl.validate(key); err != nil {
			return err
		}
		if names[cl.Name] {
			return bad(key+".name", "duplicate cluster name %q", cl.Name)
		}
		names[cl.Name] = true
	}
	if c.Etcd.Name == "" {
		return bad("etcd.name", "must not be empty")
	}

	a := c.API
	switch {
	case a.Port < 0 || a.Port > 65535:
		return bad("api.port", "must be between 0 and 65535, got %d", a.Port)
	case a.Host != "" && net.ParseIP(a.Host) == nil && !validHostname(a.Host):
		return bad("api.host", "not an IP address or host name: %q", a.Host)
	case (a.TLS.Cert == "") != (a.TLS.Key == ""):
		return bad("api.tls", "cert and key must be given together")
	case a.TLS.ClientCA != "" && a.TLS.Cert == "":
		return bad("api.tls.client_ca", "needs api.tls.cert and api.tls.key")
	case a.ReadTimeout <= 0:
		return bad("api.read_timeout", "must be positive, got %v", a.ReadTimeout)
	case a.WriteTimeout <= 0:
		return bad("api.write_timeout", "must be positive, got %v", a.WriteTimeout)
	case a.IdleTimeout < 0:
		return bad("api.idle_timeout", "must not be negative, got %v", a.IdleTimeout)
	case a.ShutdownTimeout <= 0:
		return bad("api.shutdown_timeout", "must be positive, got %v", a.ShutdownTimeout)
	}
	for _, f := range []struct{ key, path string }{{"api.tls.cert", a.TLS.Cert}, {"api.tls.key", a.TLS.Key}, {"api.tls.client_ca", a.TLS.ClientCA}} {
		if err := readable(f.key, f.path); err != nil {
			return err
		}
	}
	for i, o := range a.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return bad(fmt.Sprintf("api.cors_origins[%d]", i), "want \"*\" or an origin such as https://dash.example.com, got %q", o)
		}
	}
	seen := map[string]bool{}
	for i := range a.Auth.Tokens {
		t := &c.API.Auth.Tokens[i]
		key := fmt.Sprintf("api.auth.tokens[%d]", i)
		if t.TokenFile != "" {
			if t.Token != "" {
				return bad(key, "give token or token_file, not both")
			}
			b, err := os.ReadFile(t.TokenFile)
			if err != nil {
				return bad(key+".token_file", "%v", err)
			}
			t.Token = strings.TrimSpace(string(b))
		}
		switch {
		case len(t.Token) < 16:
			return bad(key+".token", "must be at least 16 characters")
		case t.Role != RoleReadOnly && t.Role != RoleAdmin:
			return bad(key+".role", "must be %q or %q, got %q", RoleReadOnly, RoleAdmin, t.Role)
		case seen[t.Token]:
			return bad(key+".token", "duplicate token")
		}
		seen[t.Token] = true
	}

	m := c.Monitor
	switch {
	case m.HealthCheckInterval <= 0:
		return bad("monitor.health_check_interval", "must be positive, got %v", m.HealthCheckInterval)
	case m.MetricsInterval <= 0:
		return bad("monitor.metrics_interval", "must be positive, got %v", m.MetricsInterval)
	case m.CheckTimeout <= 0:
		return bad("monitor.check_timeout", "must be positive, got %v", m.CheckTimeout)
	case m.LatencySamples < 1 || m.LatencySamples > 1000:
		return bad("monitor.latency_samples", "must be between 1 and 1000, got %d", m.LatencySamples)
	case m.MemoryHistory < 1 || m.MemoryHistory > 100000:
		return bad("monitor.memory_history", "must be between 1 and 100000, got %d", m.MemoryHistory)
	}

	// Upper bounds keep every value far from overflowing once converted (milliseconds to
	// a Duration, MiB to bytes): a value that wrapped would become a tiny threshold.
	t := c.Thresholds
	switch {
	case t.MaxLatencyMS < 0 || t.MaxLatencyMS > maxLatencyMS:
		return bad("thresholds.max_latency_ms", "must be between 0 (alerts.thresholds.request_latency_p99) and %d (one hour), got %d", maxLatencyMS, t.MaxLatencyMS)
	case t.MaxDBSizeMB < 0 || t.MaxDBSizeMB > maxDBSizeMB:
		return bad("thresholds.max_db_size_mb", "must be between 0 (off) and %d (1 TiB), got %d", maxDBSizeMB, t.MaxDBSizeMB)
	case t.MinAvailableNodes < 0 || t.MinAvailableNodes > maxMembers:
		return bad("thresholds.min_available_nodes", "must be between 0 (off) and %d, got %d", maxMembers, t.MinAvailableNodes)
	case t.MaxLeaderChanges != nil && (*t.MaxLeaderChanges < 0 || *t.MaxLeaderChanges > maxLeaderChanges):
		return bad("thresholds.max_leader_changes", "must be between 0 and %d, got %d", maxLeaderChanges, *t.MaxLeaderChanges)
	case t.LeaderChangesIn < 0:
		return bad("thresholds.leader_changes_window", "must not be negative (0: alerts.thresholds.leader_changes_window), got %v", t.LeaderChangesIn)
	}

	al := c.Alerts
	if al.DedupWindow < 0 {
		return bad("alerts.dedup_window", "must not be negative (0: the route's repeat_interval), got %v", al.DedupWindow)
	}
	for i, w := range al.Webhooks {
		if err := httpURL(fmt.Sprintf("alerts.webhooks[%d].url", i), w.URL); err != nil {
			return err
		}
	}
	if al.Slack != nil {
		if err := httpURL("alerts.slack.webhook_url", al.Slack.WebhookURL); err != nil {
			return err
		}
	}
	if al.PagerDuty != nil && len(al.PagerDuty.RoutingKey) != 32 {
		return bad("alerts.pagerduty.routing_key", "must be the 32-character integration key")
	}
	if e := al.Email; e != nil {
		switch {
		case e.Addr == "":
			return bad("alerts.email.addr", "required (host:port)")
		case e.From == "":
			return bad("alerts.email.from", "required")
		case len(e.To) == 0:
			return bad("alerts.email.to", "needs at least one recipient")
		}
		host, _, err := net.SplitHostPort(e.Addr)
		if err != nil {
			return bad("alerts.email.addr", "want host:port, got %q", e.Addr)
		}
		if err := plaintextAuth("alerts.email", host, e.Username, e.AllowPlaintext); err != nil {
			return err
		}
	}

	if err := c.validateStore(); err != nil {
		return err
	}
	if err := c.validateMaintenance(); err != nil {
		return err
	}
	if err := c.validateAlerting(); err != nil {
		return err
	}

	if err := c.benchConfig().Validate(); err != nil {
		var ce *bench.ConfigError
		if errors.As(err, &ce) {
			return bad("benchmark."+snake(ce.Field), "%s", ce.Reason)
		}
		return err
	}
	b := c.Benchmark
	switch {
	case b.Output != "text" && b.Output != "json":
		return bad("benchmark.output", "must be text or json, got %q", b.Output)
	case b.Tolerance < 0:
		return bad("benchmark.tolerance", "must not be negative, got %v", b.Tolerance)
	case b.SLO.MinReadThroughput < 0:
		return bad("benchmark.slo.min_read_throughput", "must not be negative")
	case b.SLO.MinWriteThroughput < 0:
		return bad("benchmark.slo.min_write_throughput", "must not be negative")
	case b.SLO.MaxP99 < 0:
		return bad("benchmark.slo.max_p99", "must not be negative")
	case b.SLO.MaxWriteP99 < 0:
		return bad("benchmark.slo.max_write_p99", "must not be negative")
	case b.SLO.MaxReadP99 < 0:
		return bad("benchmark.slo.max_read_p99", "must not be negative")
	case b.SLO.MaxErrorRate < 0 || b.SLO.MaxErrorRate > 1:
		return bad("benchmark.slo.max_error_rate", "must be between 0 and 1")
	case b.API.MaxOps < 0:
		return bad("benchmark.api.max_ops", "must not be negative")
	case b.API.MaxDuration < 0 || b.API.MaxDuration >= a.WriteTimeout:
		return bad("benchmark.api.max_duration", "must be between 0 and api.write_timeout (%v), got %v", a.WriteTimeout, b.API.MaxDuration)
	}
	if b.Baseline != "" {
		if err := readable("benchmark.baseline", b.Baseline); err != nil {
			return err
		}
	}

	switch strings.ToLower(c.Logging.Level) {
	case "debug", "info", "warn", "error":
	default:
		return bad("logging.level", "must be debug, info, warn or error, got %q", c.Logging.Level)
	}
	if c.Logging.Format != "json" && c.Logging.Format != "console" {
		return bad("logging.format", "must be json or console, got %q", c.Logging.Format)
	}
	return nil
}

// Bounds of the thresholds.
const (
	maxLatencyMS     = 3600 * 1000
	maxDBSizeMB      = 1 << 20
	maxMembers       = 1000
	maxLeaderChanges = 1000000
)

// plaintextAuth refuses a configuration that can never deliver: Go's smtp.PlainAuth
// refuses to send a username and password over a connection without TLS to any host but
// localhost, so with allow_plaintext every message to a server without STARTTLS would
// fail at authentication.
func plaintextAuth(key, host, username string, allowPlaintext bool) error {
	if !allowPlaintext || username == "" || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return bad(key+".allow_plaintext", "with a username, mail to %s would never be delivered: Go's smtp.PlainAuth refuses "+
		"to send credentials over a connection without TLS (except to localhost); use a server that offers STARTTLS, "+
		"or remove username and password", host)
}

func (c *ClusterConfig) validate(key string) error {
	if c.Name == "" {
		return bad(key+".name", "must not be empty")
	}
	if len(c.Endpoints) == 0 {
		return bad(key+".endpoints", "needs at least one endpoint")
	}
	for i, ep := range c.Endpoints {
		if err := endpoint(ep); err != nil {
			return bad(fmt.Sprintf("%s.endpoints[%d]", key, i), "%v", err)
		}
	}
	if c.DialTimeout <= 0 {
		return bad(key+".dial_timeout", "must be positive, got %v", c.DialTimeout)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return bad(key+".tls", "cert and key must be given together")
	}
	for _, f := range []struct{ key, path string }{{key + ".tls.cert", c.TLS.Cert}, {key + ".tls.key", c.TLS.Key}, {key + ".tls.ca", c.TLS.CA}} {
		if err := readable(f.key, f.path); err != nil {
			return err
		}
	}
	for name, u := range c.MetricsURLs {
		if err := httpURL(fmt.Sprintf("%s.metrics_urls.%s", key, name), u); err != nil {
			return err
		}
	}
	if c.Username == "" && c.Password != "" {
		return bad(key+".username", "required with a password")
	}
	return nil
}

// endpoint accepts host:port, http(s)://host:port and unix:// endpoints, as etcdctl does.
func endpoint(ep string) error {
	if strings.HasPrefix(ep, "unix://") || strings.HasPrefix(ep, "unixs://") {
		return nil
	}
	hostport := ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("bad endpoint %q: %v", ep, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("bad endpoint %q: scheme must be http, https or unix", ep)
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("bad endpoint %q: want host:port", ep)
	}
	return nil
}

func httpURL(key, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad(key, "want an http or https URL, got %q", raw)
	}
	return nil
}

func readable(key, path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return bad(key, "%v", err)
	}
	return f.Close()
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

// snake turns a bench field name (keySize) into the config key (key_size).
func snake(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	out := b.String()
	if out == "workload" {
		return "type"
	}
	return out
}

// benchConfig is the bench.Config of --run-benchmark.
func (c *Config) benchConfig() bench.Config {
	b := c.Benchmark
	w, err := bench.ParseWorkload(b.Type)
	if err != nil {
		w = bench.Workload(b.Type) // Validate reports it
	}
	return bench.Config{
		Workload: w, Ops: b.Ops, Duration: b.Duration, Connections: b.Connections, Clients: b.Clients,
		KeySize: b.KeySize, ValueSize: b.ValueSize, Rate: b.Rate, ReadRatio: b.ReadRatio,
		TxnOps: b.TxnOps, RangeLimit: b.RangeLimit,
		TargetLeader: b.TargetLeader, Consistency: bench.Consistency(b.Consistency),
	}
}

// validateStore checks the store: block. With no type, data_dir decides as it always
// did (bbolt under it, or memory); type bbolt takes its path from data_dir when it has
// none.
func (c *Config) validateStore() error {
	st := &c.Store
	if st.Type == "" && *st != (store.Config{}) {
		st.Type = store.TypeBolt // retention or a path alone: the default type
	}
	if st.Type == store.TypeBolt && st.Path == "" {
		if c.DataDir == "" {
			return bad("store.path", "type bbolt needs a path or data_dir")
		}
		st.Path = filepath.Join(c.DataDir, stateFile)
	}
	if st.Type != "" {
		if err := st.Validate(); err != nil {
			return err
		}
	}
	if c.Replica != (ReplicaConfig{}) && st.Type != "postgres" {
		return bad("replica", "replicas share a PostgreSQL store: set store.type: postgres")
	}
	if c.Replica.LeaseTTL < 0 {
		return bad("replica.lease_ttl", "must not be negative, got %v", c.Replica.LeaseTTL)
	}
	return nil
}

func (c *Config) slo() bench.SLO {
	s := c.Benchmark.SLO
	return bench.SLO{MinReadThroughput: s.MinReadThroughput, MinWriteThroughput: s.MinWriteThroughput, MaxP99: s.MaxP99,
		MaxWriteP99: s.MaxWriteP99, MaxReadP99: s.MaxReadP99, MaxErrorRate: s.MaxErrorRate}
}

// ---- Maintenance through the API and remediation: maintenance.snapshot_dir and
// ---- etcd.remediation / clusters[].remediation.

// MaintenanceConfig is the maintenance API's settings.
type MaintenanceConfig struct {
	// SnapshotDir is the directory POST /api/v1/clusters/{name}/maintenance/snapshot
	// writes into (a file name the request may choose, never a path). Empty: snapshots
	// through the API are off (403).
	SnapshotDir string `yaml:"snapshot_dir"`
	// MarkEvery, when set, writes a revision mark into each cluster that often, and
	// MarkKeep (default 7 days) is how long marks are kept: compactions by age
	// ("retain") need them.
	MarkEvery time.Duration `yaml:"mark_every"`
	MarkKeep  time.Duration `yaml:"mark_keep"`
}

// RemediationConfig is what the daemon does by itself about one cluster's alerts
// (monitor.Remediation). Off unless defragment or nospace is set.
type RemediationConfig struct {
	// Defragment answers EtcdDatabaseHighFragmentationRatio with a defragmentation (one
	// member at a time, the leader last), started only inside Window.
	Defragment bool `yaml:"defragment"`
	// Window is "DAYS HH:MM-HH:MM [ZONE]", such as "Sat,Sun 02:00-04:00 Europe/Berlin";
	// required with defragment.
	Window string `yaml:"window"`
	// NoSpace answers a NOSPACE alarm with compact, defragment and disarm (disarm only
	// once every member is under 80% of its quota), at any time.
	NoSpace bool `yaml:"nospace"`
	// KeepRevisions is the history the NOSPACE compaction keeps (0: 1000).
	KeepRevisions int64 `yaml:"keep_revisions"`
	// MoveLeader hands leadership away before the leader's defragmentation.
	MoveLeader bool `yaml:"move_leader"`
	// DryRun records each action's plan as a dry-run operation without taking it.
	DryRun bool `yaml:"dry_run"`
	// Retry is how long after acting on an alert that still fires it is acted on again
	// (0: 1h).
	Retry time.Duration `yaml:"retry"`
}

func (c *Config) validateMaintenance() error {
	if d := c.Maintenance.SnapshotDir; d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			return bad("maintenance.snapshot_dir", "%v", err)
		}
		fi, err := os.Stat(abs)
		if err != nil || !fi.IsDir() {
			return bad("maintenance.snapshot_dir", "%q is not an existing directory", d)
		}
		c.Maintenance.SnapshotDir = abs
	}
	if mt := &c.Maintenance; mt.MarkEvery != 0 {
		if mt.MarkKeep == 0 {
			mt.MarkKeep = 7 * 24 * time.Hour
		}
		switch {
		case mt.MarkEvery < time.Second:
			return bad("maintenance.mark_every", "must be at least 1s (0: off), got %v", mt.MarkEvery)
		case mt.MarkKeep < mt.MarkEvery:
			return bad("maintenance.mark_keep", "must be at least maintenance.mark_every (%v), got %v", mt.MarkEvery, mt.MarkKeep)
		}
	}
	clusters := append([]ClusterConfig{c.Etcd.ClusterConfig}, c.Clusters...)
	for i, cl := range clusters {
		key := "etcd.remediation"
		if i > 0 {
			key = fmt.Sprintf("clusters[%d].remediation", i-1)
		}
		if _, err := cl.Remediation.remediation(key); err != nil {
			return err
		}
	}
	return nil
}

// remediation converts r, naming the key at fault.
func (r RemediationConfig) remediation(key string) (monitor.Remediation, error) {
	out := monitor.Remediation{Defragment: r.Defragment, NoSpace: r.NoSpace, KeepRevisions: r.KeepRevisions,
		MoveLeader: r.MoveLeader, DryRun: r.DryRun, Retry: r.Retry}
	switch {
	case r.Window != "":
		w, err := maintenance.ParseWindow(r.Window)
		if err != nil {
			return out, bad(key+".window", "%v", err)
		}
		out.Window = w
	case r.Defragment:
		return out, bad(key+".window", `required with defragment: "DAYS HH:MM-HH:MM [ZONE]", such as "Sat,Sun 02:00-04:00 Europe/Berlin"`)
	}
	switch {
	case r.KeepRevisions < 0:
		return out, bad(key+".keep_revisions", "must not be negative, got %d", r.KeepRevisions)
	case r.Retry < 0:
		return out, bad(key+".retry", "must not be negative, got %v", r.Retry)
	}
	return out, nil
}

// maintenanceOptions are the monitor's options of this block (validated already).
func (c *Config) maintenanceOptions() []monitor.Option {
	opts := []monitor.Option{monitor.WithSnapshotDir(c.Maintenance.SnapshotDir)}
	if c.Maintenance.MarkEvery > 0 {
		opts = append(opts, monitor.WithRevisionMarks(c.Maintenance.MarkEvery, c.Maintenance.MarkKeep))
	}
	for _, cl := range append([]ClusterConfig{c.Etcd.ClusterConfig}, c.Clusters...) {
		if r, err := cl.Remediation.remediation(""); err == nil && (r.Defragment || r.NoSpace) {
			opts = append(opts, monitor.WithRemediation(cl.Name, r))
		}
	}
	return opts
}
