package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// pkgDir is the package directory, the working directory before any test ran: a test
// running in parallel cannot rely on the working directory, which the etcd test
// framework changes while a cluster runs.
var pkgDir = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd
}()

// ownProcessEnv names the test that a process started by inOwnProcess runs.
const ownProcessEnv = "ETCD_MONITOR_TEST_OWN_PROCESS"

// ownProcesses admits two processes of inOwnProcess at a time: each runs a 3-member
// cluster under -race, and on 2 cores three of them (with another package's tests)
// slow raft enough that members report no leader for seconds.
var ownProcesses = make(chan struct{}, 2)

// inOwnProcess runs the calling test in a process of its own, in parallel with the
// package's other parallel tests, and reports whether it did so (the caller then
// returns); in that process it returns false and the test runs. The end-to-end tests
// mostly wait (health intervals, group_wait, members restarting) but each runs a
// 3-member etcdtest cluster, and the etcd test framework allows one cluster at a time
// in a process. The process is this test binary: the test fails if it fails there, a
// data race or a leaked goroutine included, and its output is shown.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(ownProcessEnv) == t.Name() {
		return false
	}
	t.Parallel()
	ownProcesses <- struct{}{}
	defer func() { <-ownProcesses }()
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		// Its own timeout panics with its goroutines before the parent's does.
		args = append(args, "-test.timeout="+(time.Until(d)*9/10).Round(time.Second).String())
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), ownProcessEnv+"="+t.Name())
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s in its own process: %v\n%s", t.Name(), err, out.String())
	}
	switch {
	case strings.Contains(out.String(), "--- SKIP: "+t.Name()+" ("):
		var why []string
		for line := range strings.Lines(out.String()) {
			if strings.Contains(line, ".go:") && !strings.Contains(line, "logger.go:") {
				why = append(why, strings.TrimSpace(line))
			}
		}
		t.Skipf("skipped in its own process: %s", strings.Join(why, "; "))
	case !strings.Contains(out.String(), "--- PASS: "+t.Name()+" ("):
		t.Fatalf("%s did not pass in its own process:\n%s", t.Name(), out.String())
	}
	if testing.Verbose() {
		// The test's own lines (figures such as time to notify), not the cluster's logs.
		for line := range strings.Lines(out.String()) {
			if strings.Contains(line, "_test.go:") && !strings.Contains(line, "logger.go:") {
				t.Log(strings.TrimSpace(line))
			}
		}
	}
	t.Logf("passed in its own process in %v", time.Since(start).Round(100*time.Millisecond))
	return true
}

// syncBuffer is a bytes.Buffer safe for the daemon's writes and the test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingRe = regexp.MustCompile(`"msg":"serving API","address":"([^"]+)"`)

// address waits until the daemon logs where it serves.
func address(t testing.TB, logs interface{ String() string }) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		m := servingRe.FindStringSubmatch(logs.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 30*time.Second, 10*time.Millisecond, "daemon never served; logs:\n%s", logs)
	return addr
}

// daemon runs the daemon in-process on a free loopback port until the test ends (when
// it must have stopped cleanly) and returns its base URL.
func daemon(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	t.Cleanup(http.DefaultClient.CloseIdleConnections) // runs after the daemon stopped
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	base := []string{"--api-host=127.0.0.1", "--api-port=0"}
	go func() { done <- run(ctx, append(base, args...), &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "graceful shutdown")
		case <-time.After(30 * time.Second):
			buf := make([]byte, 4<<20)
			t.Errorf("daemon did not stop; logs:\n%s\ngoroutines:\n%s", stderr.String(), buf[:runtime.Stack(buf, true)])
		}
	})
	select {
	case err := <-done:
		t.Fatalf("daemon exited at startup: %v\n%s", err, stderr.String())
	default:
	}
	return "http://" + address(t, &stderr), &stderr
}

// request sends a request and decodes the JSON answer into out (when not nil). It fails
// t without stopping it; inside an Eventually condition t is the condition's CollectT,
// or nil to report nothing. It returns 0 when there was no answer.
// quiet is a TestingT that reports nothing: for a request whose failure the caller
// retries.
type quiet struct{}

func (quiet) Errorf(string, ...any) {}

func request(t assert.TestingT, method, url, token, body string, out any) int {
	if t == nil {
		t = quiet{}
	}
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if !assert.NoError(t, err) {
		return 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if !assert.NoError(t, err) {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !assert.NoError(t, err) {
		return 0
	}
	if out != nil && !assert.NoError(t, json.Unmarshal(b, out), "%s", b) {
		return 0
	}
	return resp.StatusCode
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func endpoints() string { return "--endpoints=" + strings.Join(etcdtest.Endpoints(), ",") }

const (
	readToken  = "read-only-token-0123456789"
	adminToken = "admin-token-0123456789abcdef"
)

func TestAuthRoles(t *testing.T) {
	cfg := writeFile(t, "auth.yaml", fmt.Sprintf(`
clusters:
  - name: second
    endpoints: [%s]
api:
  cors_origins: ["https://dash.example.com"]
  auth:
    tokens:
      - {name: grafana, token: %s, role: read-only}
      - {name: ops, token: %s, role: admin}
`, etcdtest.Endpoints()[0], readToken, adminToken))
	url, logs := daemon(t, "--config="+cfg, endpoints())

	var e struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	assert.Equal(t, http.StatusOK, request(t, "GET", url+"/health", "", "", nil), "liveness needs no token")
	assert.Equal(t, http.StatusUnauthorized, request(t, "GET", url+"/api/v1/alerts", "", "", &e))
	assert.Contains(t, e.Error, "missing bearer token")
	assert.Equal(t, http.StatusUnauthorized, request(t, "GET", url+"/api/v1/alerts", "not-a-known-token-at-all", "", &e))
	assert.Contains(t, e.Error, "invalid")
	assert.Equal(t, http.StatusUnauthorized, request(t, "GET", url+"/metrics", "", "", nil))
	assert.Equal(t, http.StatusOK, request(t, "GET", url+"/api/v1/alerts", readToken, "", nil))
	assert.Equal(t, http.StatusOK, request(t, "GET", url+"/metrics", readToken, "", nil))
	var clusters struct {
		Clusters []string `json:"clusters"`
	}
	assert.Equal(t, http.StatusOK, request(t, "GET", url+"/api/v1/clusters", readToken, "", &clusters))
	assert.Equal(t, []string{"default", "second"}, clusters.Clusters)

	body := `{"type":"write","ops":100,"connections":1,"clients":4}`
	assert.Equal(t, http.StatusUnauthorized, request(t, "POST", url+"/api/v1/performance/benchmark?cluster=default", "", body, &e))
	assert.Equal(t, http.StatusForbidden, request(t, "POST", url+"/api/v1/performance/benchmark?cluster=default", readToken, body, &e))
	assert.Contains(t, e.Error, "read-only")
	var res struct {
		Result struct {
			Ops       int64 `json:"ops"`
			Successes int64 `json:"successes"`
		} `json:"result"`
	}
	assert.Equal(t, http.StatusOK, request(t, "POST", url+"/api/v1/clusters/second/benchmark", adminToken, body, &res))
	assert.EqualValues(t, 100, res.Result.Ops)
	assert.Equal(t, http.StatusBadRequest, request(t, "POST", url+"/api/v1/performance/benchmark?cluster=default", adminToken, `{"type":"scan"}`, &e))
	assert.Equal(t, http.StatusBadRequest, request(t, "POST", url+"/api/v1/performance/benchmark", adminToken, body, &e), "two clusters: name one")
	assert.Contains(t, e.Error, "default, second")
	// The status page and its assets load without a token (a browser cannot send one
	// when it navigates); the data behind them does not.
	for _, p := range []string{"/", "/ui/app.js"} {
		assert.NotEqual(t, http.StatusUnauthorized, request(t, "GET", url+p, "", "", nil), p)
	}
	assert.Equal(t, http.StatusUnauthorized, request(t, "GET", url+"/ui/../api/v1/alerts", "", "", nil))

	// CORS: the configured origin may preflight; another may not.
	req, _ := http.NewRequest(http.MethodOptions, url+"/api/v1/alerts", nil)
	req.Header.Set("Origin", "https://dash.example.com")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "https://dash.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
	req.Header.Set("Origin", "https://evil.example.com")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))

	// Requests are logged.
	assert.Contains(t, logs.String(), `"msg":"request","method":"POST","path":"/api/v1/performance/benchmark","status":403`)
}

// corruptDir is a data_dir whose state file is not one.
func corruptDir(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd-monitor.db"), []byte("not a state file, and long enough to look like one: "+strings.Repeat("x", 8192)), 0o600))
	return dir
}

func TestBadConfigurationNamesTheProblem(t *testing.T) {
	unreadable := filepath.Join(t.TempDir(), "missing.pem")
	cases := []struct {
		name    string
		yaml    string // written to a file passed as --config, when not empty
		args    []string
		mention []string
	}{
		{"yaml syntax", "api:\n  port: [1,\n", nil, []string{"config", "line"}},
		{"unknown key", "api:\n  prot: 8080\n", nil, []string{"prot", "line 2"}},
		{"wrong type", "monitor:\n  health_check_interval: often\n", nil, []string{"often", "line 2"}},
		{"port range", "api:\n  port: 70000\n", nil, []string{"api.port", "70000"}},
		{"negative interval", "monitor:\n  metrics_interval: -1s\n", nil, []string{"monitor.metrics_interval"}},
		{"token role", "api:\n  auth:\n    tokens:\n      - {name: a, token: 0123456789abcdefgh, role: root}\n", nil, []string{"api.auth.tokens[0].role", "root"}},
		{"short token", "api:\n  auth:\n    tokens:\n      - {name: a, token: short, role: admin}\n", nil, []string{"api.auth.tokens[0].token"}},
		{"bad endpoint", "etcd:\n  endpoints: [\"ftp://x:1\"]\n", nil, []string{"etcd.endpoints[0]"}},
		{"cluster without name", "clusters:\n  - endpoints: [\"127.0.0.1:2379\"]\n", nil, []string{"clusters[0].name"}},
		{"webhook url", "alerts:\n  webhooks:\n    - url: not-a-url\n", nil, []string{"alerts.webhooks[0].url"}},
		{"pagerduty key", "alerts:\n  pagerduty:\n    routing_key: short\n", nil, []string{"alerts.pagerduty.routing_key"}},
		{"tls pair", "api:\n  tls:\n    cert: /x.pem\n", nil, []string{"api.tls"}},
		{"tls file", "etcd:\n  tls:\n    ca: " + unreadable + "\n", nil, []string{"etcd.tls.ca", "missing.pem"}},
		{"bench workload", "benchmark:\n  type: scan\n", nil, []string{"benchmark.type", "scan"}},
		{"bench ratio", "benchmark:\n  read_ratio: 2\n", nil, []string{"benchmark.read_ratio"}},
		{"bench api duration", "benchmark:\n  api:\n    max_duration: 1m\n", nil, []string{"benchmark.api.max_duration"}},
		{"bench txn ops", "benchmark:\n  type: txn\n  txn_ops: -1\n", nil, []string{"benchmark.txn_ops"}},
		{"bench range limit", "benchmark:\n  range_limit: -3\n", nil, []string{"benchmark.range_limit"}},
		{"bench write p99", "benchmark:\n  slo:\n    max_write_p99: -1s\n", nil, []string{"benchmark.slo.max_write_p99"}},
		{"bench read p99", "benchmark:\n  slo:\n    max_read_p99: -1s\n", nil, []string{"benchmark.slo.max_read_p99"}},
		{"store type", "store:\n  type: mongo\n", nil, []string{"store.type", "mongo"}},
		{"store postgres dsn", "store:\n  type: postgres\n", nil, []string{"store.dsn_file", "dsn_env"}},
		{"store bbolt path", "store:\n  type: bbolt\n", nil, []string{"store.path", "data_dir"}},
		{"store pg key on bbolt", "data_dir: /tmp\nstore:\n  type: bbolt\n  dsn_env: X\n", nil, []string{"store.dsn_env", "postgres"}},
		{"replica without postgres", "replica:\n  id: a\n", nil, []string{"replica", "store.type: postgres"}},
		{"log level", "logging:\n  level: loud\n", nil, []string{"logging.level"}},
		{"latency overflow", "thresholds:\n  max_latency_ms: 18446744073710\n", nil, []string{"thresholds.max_latency_ms", "18446744073710"}},
		{"db size overflow", "thresholds:\n  max_db_size_mb: 17592186044416\n", nil, []string{"thresholds.max_db_size_mb", "17592186044416"}},
		{"leader changes overflow", "thresholds:\n  max_leader_changes: 9223372036854775807\n", nil, []string{"thresholds.max_leader_changes"}},
		{"flag latency overflow", "", []string{"--max-latency-ms=18446744073710"}, []string{"--max-latency-ms", "18446744073710"}},
		{"route receiver", "alerts:\n  route:\n    receiver: nobody\n", nil, []string{"alerts.route.receiver", "nobody"}},
		{"route matcher regexp", "alerts:\n  receivers: [{name: a, type: console}]\n  route:\n    receiver: a\n    routes:\n      - matchers: ['cluster=~\"(\"']\n        receiver: a\n", nil, []string{"alerts.route.routes[0].matchers[0]"}},
		{"receiver type", "alerts:\n  receivers: [{name: a, type: fax}]\n", nil, []string{"alerts.receivers[0].type", "fax"}},
		{"receiver url", "alerts:\n  receivers: [{name: a, type: slack, url: nope}]\n", nil, []string{"alerts.receivers[0].url"}},
		{"receiver clash", "alerts:\n  console: true\n  receivers: [{name: console, type: console}]\n", nil, []string{"alerts.receivers[0].name", "console"}},
		{"inhibit rule", "alerts:\n  inhibit_rules: [{source_matchers: ['a=b']}]\n", nil, []string{"alerts.inhibit_rules[0]"}},
		{"rule for", "alerts:\n  rules: {EtcdMembersDown: {for: -1s}}\n", nil, []string{"alerts.rules.EtcdMembersDown.for"}},
		{"threshold", "alerts:\n  thresholds: {quota_used: 2}\n", nil, []string{"alerts.thresholds.quota_used"}},
		{"cluster threshold", "etcd:\n  thresholds: {quota_used: 7}\n", nil, []string{"etcd.thresholds.quota_used"}},
		{"cluster threshold key", "etcd:\n  thresholds: {quota_usd: 0.5}\n", nil, []string{"etcd.thresholds.quota_usd", "unknown"}},
		{"cluster route", "etcd:\n  routes: [{receiver: nobody}]\n", nil, []string{"etcd.routes[0].receiver", "nobody"}},
		{"email receiver plaintext", "alerts:\n  receivers: [{name: m, type: email, addr: \"mx.example.com:25\", from: a@example.com, to: [b@example.com], username: u, password: p, allow_plaintext: true}]\n",
			nil, []string{"alerts.receivers[0].allow_plaintext", "PlainAuth"}},
		{"corrupt state file", "data_dir: " + corruptDir(t) + "\n", nil, []string{"etcd-monitor.db", "data_dir"}},
		{"unwritable data dir", "data_dir: /proc/etcd-monitor\n", nil, []string{"data_dir", "/proc/etcd-monitor"}},
		{"plaintext auth", "alerts:\n  email: {addr: \"smtp.example.com:25\", from: a@example.com, to: [b@example.com], username: u, password: p, allow_plaintext: true}\n",
			nil, []string{"alerts.email.allow_plaintext", "PlainAuth", "smtp.example.com"}},
		{"missing file", "", []string{"--config=/nonexistent/etcd-monitor.yaml"}, []string{"/nonexistent/etcd-monitor.yaml"}},
		{"flag value", "", []string{"--api-port=abc"}, []string{"api-port"}},
		{"unknown flag", "", []string{"--api-prot=1"}, []string{"api-prot"}},
		{"flag range", "", []string{"--api-port=-1"}, []string{"--api-port", "-1"}},
		{"flag interval", "", []string{"--health-check-interval=0s"}, []string{"--health-check-interval"}},
		{"flag workload", "", []string{"--benchmark-type=scan"}, []string{"--benchmark-type", "scan"}},
		{"flag ops", "", []string{"--benchmark-ops=-5"}, []string{"--benchmark-ops"}},
		{"stray argument", "", []string{"serve"}, []string{"serve"}},
		{"etcd unreachable", "", []string{"--endpoints=127.0.0.1:1", "--dial-timeout=300ms"}, []string{"cannot reach etcd", "127.0.0.1:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--dial-timeout=300ms"}, c.args...)
			if c.yaml != "" {
				args = append(args, "--config="+writeFile(t, "c.yaml", c.yaml))
			}
			var stdout, stderr syncBuffer
			err := run(context.Background(), args, &stdout, &stderr)
			require.Error(t, err)
			msg := err.Error() + "\n" + stderr.String()
			for _, m := range c.mention {
				assert.Contains(t, msg, m)
			}
		})
	}
}

func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("config.example.yaml")
	require.NoError(t, err)
	text := string(b)
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() != reflect.TypeOf(Config{}).PkgPath() {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")
			if tag[0] == "" {
				walk(f.Type, path) // inline
				continue
			}
			key := path + tag[0]
			assert.Regexp(t, `(?m)^[ #]*(- )?`+regexp.QuoteMeta(tag[0])+`:`, text, "%s is not documented", key)
			walk(f.Type, key+".")
		}
	}
	walk(reflect.TypeOf(Config{}), "")

	// It is valid as it stands and holds the defaults.
	cfg := defaultConfig()
	require.NoError(t, loadConfig("config.example.yaml", &cfg))
	require.NoError(t, cfg.validate())
	def := defaultConfig()
	assert.Equal(t, def.Monitor, cfg.Monitor)
	assert.Equal(t, def.Thresholds, cfg.Thresholds)
	assert.Equal(t, def.DataDir, cfg.DataDir)
	assert.Equal(t, def.API.Port, cfg.API.Port)
	assert.Equal(t, def.API.WriteTimeout, cfg.API.WriteTimeout)
	assert.Equal(t, def.Benchmark.SLO, cfg.Benchmark.SLO)
	assert.Equal(t, def.Etcd.Endpoints, cfg.Etcd.Endpoints)
}

func TestFlagsOverrideTheFile(t *testing.T) {
	path := writeFile(t, "c.yaml", "api:\n  port: 9000\n  host: 127.0.0.1\nmonitor:\n  health_check_interval: 5s\n  metrics_interval: 7s\n")
	cfg, _, err := parseArgs([]string{"--config=" + path, "--api-port=9100", "--metrics-interval=3s", "--endpoints=a:1, b:2"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 9100, cfg.API.Port, "flag wins")
	assert.Equal(t, "127.0.0.1", cfg.API.Host, "file kept")
	assert.Equal(t, 5*time.Second, cfg.Monitor.HealthCheckInterval, "file kept")
	assert.Equal(t, 3*time.Second, cfg.Monitor.MetricsInterval, "flag wins")
	assert.Equal(t, []string{"a:1", "b:2"}, cfg.Etcd.Endpoints)
	assert.Equal(t, 30*time.Second, cfg.API.ReadTimeout, "default kept")
}

func TestVersion(t *testing.T) {
	var stdout, stderr syncBuffer
	require.NoError(t, run(context.Background(), []string{"--version"}, &stdout, &stderr))
	assert.Regexp(t, `^etcd-monitor \S+ \(go`, stdout.String())
}

func TestEmbeddedServesItsOwnEtcd(t *testing.T) {
	url, _ := daemon(t, "--embedded", "--health-check-interval=100ms", "--metrics-interval=100ms")
	var status struct {
		Healthy bool `json:"healthy"`
		Members int  `json:"members"`
	}
	require.Eventually(t, func() bool {
		return request(nil, "GET", url+"/api/v1/cluster/status", "", "", &status) == http.StatusOK && status.Healthy
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 1, status.Members)
	var alerts struct {
		Alerts []json.RawMessage `json:"alerts"`
	}
	require.Equal(t, http.StatusOK, request(t, "GET", url+"/api/v1/alerts", "", "", &alerts))
	assert.Empty(t, alerts.Alerts, "a healthy single node raises nothing")
}

func TestRunBenchmarkMode(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base.json")
	var stdout, stderr syncBuffer
	require.NoError(t, run(context.Background(), []string{endpoints(), "--run-benchmark", "--benchmark-type=write",
		"--benchmark-ops=300", "--benchmark-output=json", "--config=" + writeFile(t, "b.yaml", "benchmark:\n  connections: 2\n  clients: 5\n  save_baseline: "+base+"\n")},
		&stdout, &stderr))
	var out struct {
		Result struct {
			Ops, Successes, Failures int64
		} `json:"result"`
		SLO struct {
			Objectives []struct{ Name string } `json:"objectives"`
		} `json:"slo"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout.String()), &out), stdout.String())
	assert.EqualValues(t, 300, out.Result.Ops)
	assert.Equal(t, out.Result.Ops, out.Result.Successes+out.Result.Failures)
	assert.NotEmpty(t, out.SLO.Objectives)
	assert.FileExists(t, base)

	// Compared against that baseline with an impossible SLO enforced: a text report and a
	// non-zero exit.
	stdout = syncBuffer{}
	err := run(context.Background(), []string{endpoints(), "--run-benchmark", "--benchmark-type=write", "--benchmark-ops=100",
		"--config=" + writeFile(t, "c.yaml", "benchmark:\n  baseline: "+base+"\n  enforce_slo: true\n  slo:\n    min_write_throughput: 1e12\n")},
		&stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SLO not met")
	assert.Contains(t, stdout.String(), "FAIL write_throughput")
	assert.Contains(t, stdout.String(), "Against baseline")
}

func TestTLSListener(t *testing.T) {
	certPath, keyPath, pool := selfSigned(t)
	url, _ := daemon(t, endpoints(), "--api-cert="+certPath, "--api-key="+keyPath)
	url = strings.Replace(url, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotNil(t, resp.TLS)
	// Plain HTTP on the TLS port gets no API: Go's server answers 400 and hangs up.
	plain, err := http.Get(strings.Replace(url, "https://", "http://", 1) + "/health")
	if err == nil {
		plain.Body.Close()
		assert.Equal(t, http.StatusBadRequest, plain.StatusCode)
	}
}

func selfSigned(t *testing.T) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPath = writeFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyPath = writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestBinarySIGTERMDuringRequest builds the real binary, starts a long benchmark through
// the API, sends SIGTERM while it runs, and checks that the benchmark is cancelled at
// once (its request answers 503) and the process exits 0.
func TestBinarySIGTERMDuringRequest(t *testing.T) {
	t.Parallel() // mostly building the binary; nothing shared but the etcd node
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	bin := filepath.Join(t.TempDir(), "etcd-monitor")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = pkgDir
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	// A bad flag: non-zero exit, and the message names it.
	cmd := exec.Command(bin, "--api-port=http")
	out, err = cmd.CombinedOutput()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.NotZero(t, exitErr.ExitCode())
	assert.Contains(t, string(out), "api-port")

	// The maintenance commands share the binary.
	cmd = exec.Command(bin, "member", "list", endpoints(), "--output=json")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), `"members"`)

	cfg := writeFile(t, "c.yaml", fmt.Sprintf("api:\n  shutdown_timeout: 5s\n  auth:\n    tokens:\n      - {name: ops, token: %s, role: admin}\n", adminToken))
	var stderr syncBuffer
	cmd = exec.Command(bin, endpoints(), "--api-host=127.0.0.1", "--api-port=0", "--config="+cfg)
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	url := "http://" + address(t, &stderr)

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/api/v1/performance/benchmark",
			strings.NewReader(`{"type":"write","duration":"20s","connections":1,"clients":2}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{status: resp.StatusCode, body: string(b), err: err}
	}()
	// The benchmark is running once the daemon logs its start.
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), `"msg":"benchmark starting"`) },
		20*time.Second, 5*time.Millisecond, "logs:\n%s", &stderr)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))

	select {
	case a := <-answered:
		require.NoError(t, a.err)
		assert.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
		assert.Contains(t, a.body, "cancelled")
	case <-time.After(30 * time.Second):
		t.Fatal("the request in flight never completed")
	}
	select {
	case <-exited:
		assert.NoError(t, waitErr, "exit status 0; logs:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not exit after SIGTERM")
	}
	logs := stderr.String()
	assert.Contains(t, logs, "shutting down")
	assert.Contains(t, logs, "benchmark cancelled")
	assert.Contains(t, logs, `"msg":"stopped"`)
	assert.Less(t, strings.Index(logs, "shutting down"), strings.Index(logs, `"path":"/api/v1/performance/benchmark","status":503`),
		"the request ended after shutdown began")
}

// Plaintext SMTP with credentials is fine towards localhost, where PlainAuth sends them.
func TestPlaintextAuthToLocalhostIsAllowed(t *testing.T) {
	path := writeFile(t, "c.yaml", "alerts:\n  email: {addr: \"127.0.0.1:2525\", from: a@example.com, to: [b@example.com], username: u, password: p, allow_plaintext: true}\n")
	_, _, err := parseArgs([]string{"--config=" + path}, io.Discard)
	assert.NoError(t, err)
}

// The example configuration never points a webhook at Alertmanager's /api/v1/alerts,
// removed in Alertmanager 0.27.
func TestExampleConfigHasNoRemovedAlertmanagerAPI(t *testing.T) {
	b, err := os.ReadFile("config.example.yaml")
	require.NoError(t, err)
	assert.NotContains(t, string(b), "/api/v1/alerts")
}

// silenceBody is a valid silence.
func silenceBody() string {
	return fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"EtcdMembersDown","isRegex":false,"isEqual":true}],
		"endsAt":%q,"createdBy":"test","comment":"maintenance"}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

// createSilence creates a silence with token and returns its ID.
func createSilence(t *testing.T, url, token string) string {
	t.Helper()
	var sil struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusOK, request(t, "POST", url+"/api/v1/silences", token, silenceBody(), &sil))
	require.NotEmpty(t, sil.ID)
	return sil.ID
}

// mutatingEndpoints are every request that changes something, with a body that is
// valid, so that an admin gets past authorization; silenceID is the silence DELETE
// expires.
func mutatingEndpoints(silenceID string) []struct{ method, path, body string } {
	return []struct{ method, path, body string }{
		{"POST", "/api/v1/performance/benchmark", `{"type":"write","ops":20,"connections":1,"clients":2}`},
		{"POST", "/api/v1/silences", silenceBody()},
		{"DELETE", "/api/v1/silences/" + silenceID, ""},
		{"POST", "/api/v1/clusters/default/maintenance/compact", `{"keepRevisions":1000,"dryRun":true}`},
	}
}

// Secure by default: with no tokens, every request that changes something answers 403
// naming the settings to change, reads still work, and the request is logged.
func TestSecureByDefault(t *testing.T) {
	url, logs := daemon(t, endpoints())
	for _, ep := range mutatingEndpoints("0123456789abcdef") {
		var e struct {
			Error string `json:"error"`
		}
		assert.Equal(t, http.StatusForbidden, request(t, ep.method, url+ep.path, "", ep.body, &e), "%s %s", ep.method, ep.path)
		assert.Contains(t, e.Error, "api.auth.tokens")
		assert.Contains(t, e.Error, "api.allow_unauthenticated_writes")
		assert.Contains(t, logs.String(), fmt.Sprintf(`"method":%q,"path":%q,"status":403`, ep.method, ep.path))
	}
	var h struct {
		Warnings []string `json:"warnings"`
	}
	assert.Equal(t, http.StatusOK, request(t, "GET", url+"/health", "", "", &h))
	assert.Empty(t, h.Warnings)
	assert.Equal(t, http.StatusOK, request(t, "GET", url+"/api/v1/clusters", "", "", nil))
}

// api.allow_unauthenticated_writes lets anyone change things, with a warning at startup
// and in /health.
func TestAllowUnauthenticatedWrites(t *testing.T) {
	cfg := writeFile(t, "c.yaml", "api:\n  allow_unauthenticated_writes: true\n  request_log: false\n")
	url, logs := daemon(t, "--config="+cfg, endpoints())
	assert.Contains(t, logs.String(), `"level":"warn"`)
	assert.Contains(t, logs.String(), "allow_unauthenticated_writes is true")
	var h struct {
		Warnings []string `json:"warnings"`
	}
	require.Equal(t, http.StatusOK, request(t, "GET", url+"/health", "", "", &h))
	require.Len(t, h.Warnings, 1)
	assert.Contains(t, h.Warnings[0], "allow_unauthenticated_writes")
	for _, ep := range mutatingEndpoints(createSilence(t, url, "")) {
		code := request(t, ep.method, url+ep.path, "", ep.body, nil)
		assert.True(t, code >= 200 && code < 300, "%s %s: %d", ep.method, ep.path, code)
		// Logged even with request_log off, with no token name.
		assert.Contains(t, logs.String(), fmt.Sprintf(`"method":%q,"path":%q,"status":%d`, ep.method, ep.path, code))
	}
	assert.NotContains(t, logs.String(), `"path":"/health"`, "reads are not logged with request_log off")
}

// Each mutating endpoint with no token, a read-only token and an admin token; each
// request that changes something is logged with the token's name.
func TestMutatingEndpointsByRole(t *testing.T) {
	cfg := writeFile(t, "auth.yaml", fmt.Sprintf(`
api:
  request_log: false
  auth:
    tokens:
      - {name: grafana, token: %s, role: read-only}
      - {name: ops, token: %s, role: admin}
`, readToken, adminToken))
	url, logs := daemon(t, "--config="+cfg, endpoints())
	for _, ep := range mutatingEndpoints(createSilence(t, url, adminToken)) {
		assert.Equal(t, http.StatusUnauthorized, request(t, ep.method, url+ep.path, "", ep.body, nil), "%s %s without a token", ep.method, ep.path)
		assert.Equal(t, http.StatusForbidden, request(t, ep.method, url+ep.path, readToken, ep.body, nil), "%s %s read-only", ep.method, ep.path)
		assert.Contains(t, logs.String(), fmt.Sprintf(`"method":%q,"path":%q,"status":403,`, ep.method, ep.path))
		assert.Regexp(t, fmt.Sprintf(`"method":%q,"path":%q,"status":403,[^\n]*"token":"grafana"`, ep.method, regexp.QuoteMeta(ep.path)), logs.String())
		status := request(t, ep.method, url+ep.path, adminToken, ep.body, nil)
		assert.True(t, status >= 200 && status < 300, "%s %s admin: %d", ep.method, ep.path, status)
		assert.Regexp(t, fmt.Sprintf(`"method":%q,"path":%q,"status":%d,[^\n]*"token":"ops"`, ep.method, regexp.QuoteMeta(ep.path), status), logs.String())
	}
}

// The store: block opens the store it names; history written by one daemon is served by
// the next one on the same store.
func TestStoreBlockKeepsHistoryAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "monitor.db")
	cfg := writeFile(t, "s.yaml", "store:\n  type: bbolt\n  path: "+path+"\n  retention:\n    raw: 1h\n")
	type history struct {
		Checks []struct {
			Time    time.Time `json:"time"`
			Healthy bool      `json:"healthy"`
		} `json:"checks"`
	}
	t.Run("first", func(t *testing.T) {
		url, logs := daemon(t, "--config="+cfg, "--health-check-interval=100ms", endpoints())
		assert.Contains(t, logs.String(), `"msg":"store opened","type":"bbolt"`)
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			var h history
			assert.Equal(c, http.StatusOK, request(c, "GET", url+"/api/v1/clusters/default/history", "", "", &h))
			assert.NotEmpty(c, h.Checks)
		}, 10*time.Second, 20*time.Millisecond)
	})
	stopped := time.Now()
	t.Run("second", func(t *testing.T) {
		url, _ := daemon(t, "--config="+cfg, endpoints())
		var h history
		require.Equal(t, http.StatusOK, request(t, "GET", url+"/api/v1/clusters/default/history?until="+stopped.UTC().Format(time.RFC3339Nano), "", "", &h))
		require.NotEmpty(t, h.Checks, "the first daemon's checks")
		assert.True(t, h.Checks[0].Healthy)
	})
}
