package monitor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// call sends a request and decodes the JSON answer into out (when not nil). It fails t
// without stopping it; inside an Eventually condition t is the condition's CollectT, or
// nil to report nothing. It returns 0 when there was no answer.
func call(t assert.TestingT, method, url, body string, out any) int {
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
	if method != http.MethodHead && !strings.HasSuffix(url, "/metrics") {
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s: %s", method, url, b)
	}
	if out != nil && !assert.NoError(t, json.Unmarshal(b, out), "%s", b) {
		return 0
	}
	return resp.StatusCode
}

func get(t assert.TestingT, url string, out any) int { return call(t, http.MethodGet, url, "", out) }

// quiet is a TestingT that reports nothing: for a request whose failure the caller
// retries.
type quiet struct{}

func (quiet) Errorf(string, ...any) {}

// service starts a Service over clusters with short intervals, runs it until the test
// ends and serves it on loopback.
func service(t *testing.T, clusters []monitor.Cluster, opts ...monitor.Option) (*monitor.Service, string) {
	t.Helper()
	svc, err := monitor.New(clusters, opts...)
	require.NoError(t, err)
	srv := httptest.NewServer(svc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, svc.Close())
	})
	return svc, srv.URL
}

// receiver is an Alertmanager-style webhook endpoint that records what it is sent.
type receiver struct {
	mu   sync.Mutex
	msgs []alert.WebhookMessage
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var m alert.WebhookMessage
	if err := json.NewDecoder(req.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

// got reports whether an alert of this name, member and status has arrived.
func (r *receiver) got(name, member, status string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] == name && a.Labels["member"] == member && a.Status == status {
				return true
			}
		}
	}
	return false
}

func hasAlert(alerts []monitor.ClusterAlert, name, member string) bool {
	for _, a := range alerts {
		if a.Name == name && a.Labels["member"] == member {
			return true
		}
	}
	return false
}

func TestClusterEndToEnd(t *testing.T) {
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	cli := c.ClusterClient()
	hook := &receiver{}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()

	const (
		interval     = 200 * time.Millisecond
		probeTimeout = time.Second
		// An alert shows by the end of the first check after its cause: one interval to
		// the next check plus the check itself. Assertions allow three times that.
		bound = 3 * (interval + probeTimeout)
		// What waits on the cluster itself has no such bound: a first check that finds
		// every member healthy, a restarted member that has caught up and answers
		// probes again. On a loaded machine that takes seconds, however often we check.
		settle = time.Minute
	)
	// Members are probed through their test bridges, as a monitor behind a proxy would.
	endpoints := map[string]string{}
	for _, m := range c.Members {
		endpoints[m.Name] = m.GRPCURL
	}
	_, url := service(t, []monitor.Cluster{{
		Name: "main", Client: cli,
		Health:  []health.Option{health.WithTimeout(probeTimeout), health.WithEndpoints(endpoints)},
		Metrics: []metrics.Option{metrics.WithTimeout(probeTimeout), metrics.WithSamples(2), metrics.WithEndpoints(endpoints)},
	}},
		monitor.WithHealthInterval(interval), monitor.WithMetricsInterval(interval),
		monitor.WithAlertOptions(alert.WithWebhook(alert.WebhookConfig{URL: hookSrv.URL}), fastAlerts("webhook"),
			alert.WithRetry(alert.Retry{Attempts: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})),
	)

	// The API describes the cluster as it is.
	var status monitor.StatusResponse
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(nil, url+"/api/v1/cluster/status", &status))
		assert.True(ct, status.Healthy, "status: %+v", status)
	}, settle, 20*time.Millisecond)
	lead := c.Leader()
	leadID := health.ID(c.Members[lead].Server.MemberID())
	assert.Equal(t, "main", status.Cluster)
	assert.Equal(t, 3, status.Members)
	assert.Equal(t, 3, status.Reachable)
	assert.True(t, status.Quorum.HasQuorum)
	assert.Equal(t, leadID, status.Leader.ID)
	assert.Equal(t, health.ID(c.Members[0].Server.Cluster().ID()), status.ClusterID)

	// The members as the latest check saw them: a check after the healthy one may have
	// given up on a member a loaded machine slowed past the probe timeout, so they are
	// waited for as the next check sees them, within the bound.
	var members monitor.MembersResponse
	want := map[health.ID]string{}
	for _, m := range c.Members {
		want[health.ID(m.Server.MemberID())] = m.Name
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		if !assert.Equal(ct, http.StatusOK, get(ct, url+"/api/v1/cluster/members", &members)) {
			return
		}
		got := map[health.ID]string{}
		leaders := 0
		for _, m := range members.Members {
			got[m.ID] = m.Name
			assert.True(ct, m.Reachable, m.Name)
			assert.NotZero(ct, m.Leader, "%s sees a leader", m.Name)
			if m.IsLeader {
				leaders++
				assert.Equal(ct, m.ID, m.Leader, "the leader sees itself")
			}
		}
		assert.Equal(ct, 1, leaders, "one member is marked leader")
		assert.Equal(ct, want, got)
	}, bound, 20*time.Millisecond)

	var leader monitor.LeaderResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/cluster/leader", &leader))
	assert.Equal(t, leadID, leader.Leader.ID)
	assert.Equal(t, c.Members[lead].Name, leader.Leader.Name)
	require.NotNil(t, leader.Member)
	assert.Equal(t, c.Members[lead].Name, leader.Member.Name)

	// The evaluation after the healthy check resolves whatever a slow start raised.
	var alerts monitor.AlertsResponse
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(ct, url+"/api/v1/alerts?state=firing", &alerts))
		assert.Empty(ct, alerts.Alerts, "nothing fires on a healthy cluster")
	}, bound, 20*time.Millisecond)

	var current monitor.MetricsResponse
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(ct, url+"/api/v1/metrics/current", &current))
	}, bound, 20*time.Millisecond)
	assert.Len(t, current.Snapshot.Members, 3)
	var latency monitor.LatencyResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/metrics/latency?limit=5", &latency))
	assert.Len(t, latency.Members, 3)
	assert.NotEmpty(t, latency.History)
	assert.LessOrEqual(t, len(latency.History), 5)

	// A member stops: the alert appears in the API and reaches the webhook.
	down := (lead + 1) % 3
	downName := c.Members[down].Name
	c.StopMember(down)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(nil, url+"/api/v1/alerts", &alerts))
		assert.True(ct, hasAlert(alerts.Alerts, "EtcdMembersDown", downName), "EtcdMembersDown for %s in /api/v1/alerts", downName)
	}, bound, 20*time.Millisecond)
	for _, a := range alerts.Alerts {
		if a.Name == "EtcdMembersDown" {
			assert.Equal(t, "main", a.Cluster)
			assert.Equal(t, "main", a.Labels["cluster"])
			assert.Equal(t, alert.Firing, a.State)
			assert.Equal(t, alert.Warning, a.Severity)
		}
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.True(ct, hook.got("EtcdMembersDown", downName, "firing"), "webhook got the alert")
	}, bound, 20*time.Millisecond)
	// As the latest check saw the cluster (see the members above).
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		if !assert.Equal(ct, http.StatusOK, get(ct, url+"/api/v1/cluster/status", &status)) {
			return
		}
		assert.Equal(ct, 2, status.Reachable)
		assert.False(ct, status.Healthy)
		assert.True(ct, status.Quorum.HasQuorum)
		assert.Positive(ct, status.ActiveAlerts)
	}, bound, 20*time.Millisecond)

	var prom bytes.Buffer
	downID := health.ID(c.Members[down].Server.MemberID())
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		prom.Reset()
		if !assert.Equal(ct, http.StatusOK, promGet(ct, url+"/metrics", &prom)) {
			return
		}
		assert.Contains(ct, prom.String(), fmt.Sprintf(`etcd_monitor_member_reachable{cluster="main",member=%q} 0`, downID.Hex()))
		assert.Contains(ct, prom.String(), `etcd_monitor_cluster_members_reachable{cluster="main"} 2`)
	}, bound, 20*time.Millisecond)

	// It comes back: the alert resolves in the API, in the history and at the webhook.
	c.RestartMember(down)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(nil, url+"/api/v1/alerts", &alerts))
		assert.False(ct, hasAlert(alerts.Alerts, "EtcdMembersDown", downName), "EtcdMembersDown resolved")
	}, settle, 20*time.Millisecond)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.True(ct, hook.got("EtcdMembersDown", downName, "resolved"), "webhook got the resolution")
	}, bound, 20*time.Millisecond)
	var hist monitor.AlertsResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/alerts/history?cluster=main&severity=warning", &hist))
	var states []alert.State
	for _, a := range hist.Alerts {
		if a.Name == "EtcdMembersDown" && a.Labels["member"] == downName {
			states = append(states, a.State)
		}
	}
	// Fired, then resolved (a member that restarts may flap once more on a loaded machine).
	require.NotEmpty(t, states)
	assert.Equal(t, alert.Firing, states[0])
	assert.Equal(t, alert.Resolved, states[len(states)-1])

	// The leader stops: the API names the new leader and records the change.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(nil, url+"/api/v1/cluster/status", &status))
		assert.True(ct, status.Healthy, "healthy again before the leader stops")
	}, settle, 20*time.Millisecond)
	old := c.StopLeader()
	newLead := c.Leader()
	newID := health.ID(c.Members[newLead].Server.MemberID())
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(nil, url+"/api/v1/cluster/leader", &leader))
		assert.Equal(ct, newID, leader.Leader.ID, "new leader %s in /api/v1/cluster/leader", c.Members[newLead].Name)
	}, bound, 20*time.Millisecond)
	require.NotEmpty(t, leader.Changes)
	last := leader.Changes[len(leader.Changes)-1]
	assert.Equal(t, newID, last.To)
	assert.Equal(t, leadID, last.From)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(nil, url+"/api/v1/alerts", &alerts))
		assert.True(ct, hasAlert(alerts.Alerts, "EtcdMembersDown", c.Members[old].Name))
	}, bound, 20*time.Millisecond)
	// The change is counted: a counter, not the length of a bounded history.
	prom.Reset()
	require.Equal(t, http.StatusOK, promGet(t, url+"/metrics", &prom))
	assert.Contains(t, prom.String(), "# TYPE etcd_monitor_cluster_leader_changes_total counter")
	assert.Contains(t, prom.String(), `etcd_monitor_cluster_leader_changes_total{cluster="main"} 1`)
	c.RestartMember(old)
}

// fastAlerts is an alert configuration for tests: members down fire at once, and groups
// are notified to receiver within a few hundred milliseconds.
func fastAlerts(receiver string) alert.Option {
	zero := time.Duration(0)
	return alert.WithConfig(alert.Config{
		Route: &alert.Route{Receiver: receiver, GroupWait: 50 * time.Millisecond, GroupInterval: 100 * time.Millisecond, RepeatInterval: time.Hour},
		Rules: map[string]alert.RuleOverride{"EtcdMembersDown": {For: &zero}},
	})
}

// promGet reads url into out. It fails t without stopping it, so that it may run in
// an Eventually condition; it returns 0 when there was no answer.
func promGet(t assert.TestingT, url string, out *bytes.Buffer) int {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	resp, err := http.Get(url)
	if !assert.NoError(t, err) {
		return 0
	}
	defer resp.Body.Close()
	_, err = io.Copy(out, resp.Body)
	if !assert.NoError(t, err) {
		return 0
	}
	return resp.StatusCode
}

func TestBadInputIs400WithJSONError(t *testing.T) {
	cli := etcdtest.Client(t)
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}})
	require.NoError(t, err)
	defer svc.Close()
	srv := httptest.NewServer(svc)
	defer srv.Close()
	require.NoError(t, svc.Refresh(etcdtest.Context(t, 20*time.Second)))

	cases := []struct {
		method, path, body string
		status             int
		mention            string
	}{
		{"POST", "/api/v1/performance/benchmark", `{"type":"scan","ops":10}`, 400, "workload"},
		{"POST", "/api/v1/performance/benchmark", `{"workload":"write","ops":-5}`, 400, "ops"},
		{"POST", "/api/v1/performance/benchmark", `{"workload":"write","ops":10`, 400, "malformed JSON"},
		{"POST", "/api/v1/performance/benchmark", `[1,2]`, 400, "malformed JSON"},
		{"POST", "/api/v1/performance/benchmark", `{"workload":"write","opz":10}`, 400, "opz"},
		{"POST", "/api/v1/performance/benchmark", `{"workload":"write","duration":"soon"}`, 400, "duration"},
		{"POST", "/api/v1/performance/benchmark", `{"workload":"write","ops":2000000}`, 400, "limit"},
		{"POST", "/api/v1/performance/benchmark", `{"workload":"read","clients":-1}`, 400, "clients"},
		{"POST", "/api/v1/performance/benchmark", `{"workload":"write","slo":{"maxP99":"x"}}`, 400, "slo"},
		{"POST", "/api/v1/performance/benchmark?cluster=nope", `{"workload":"write"}`, 404, "nope"},
		{"POST", "/api/v1/performance/benchmark", `{"workload":"write","ops":10,"keepKeys":true,"prefix":"/registry/pods/"}`, 400, "prefix"},
		{"GET", "/api/v1/metrics/history?limit=abc", "", 400, "limit"},
		{"GET", "/api/v1/metrics/history?limit=0", "", 400, "limit"},
		{"GET", "/api/v1/metrics/history?limit=1001", "", 400, "limit"},
		{"GET", "/api/v1/metrics/history?since=yesterday", "", 400, "since"},
		{"GET", "/api/v1/alerts?severity=loud", "", 400, "severity"},
		{"GET", "/api/v1/alerts/history?limit=1&limit=2", "", 400, "limit"},
		{"GET", "/api/v1/cluster/status?verbose=1", "", 400, "verbose"},
		{"GET", "/api/v1/cluster/status?cluster=other", "", 404, "other"},
		{"GET", "/api/v1/clusters/local/status?cluster=local", "", 400, "cluster"},
		{"GET", "/api/v1/clusters/nope/members", "", 404, "nope"},
		{"GET", "/api/v1/clusters/local/metrics/history?step=-1s", "", 400, "step"},
		{"GET", "/api/v1/clusters/local/history?step=8785h", "", 400, "step"},
		{"GET", "/api/v1/clusters/local/metrics/history?step=2000000h", "", 400, "step"},
		{"GET", "/api/v1/clusters/local/history?since=5m&until=10m", "", 400, "until"},
		{"GET", "/api/v1/cluster/status?pretty=yes", "", 400, "pretty"},
		{"GET", "/api/v1/cluster/status?%zz", "", 400, "malformed query"},
		{"POST", "/api/v1/cluster/status", "", 405, "GET"},
		{"GET", "/api/v1/performance/benchmark", "", 405, "POST"},
		{"DELETE", "/metrics", "", 405, "GET"},
		{"GET", "/api/v2/nothing", "", 404, "/api/v2/nothing"},
	}
	for _, c := range cases {
		var e monitor.ErrorResponse
		status := call(t, c.method, srv.URL+c.path, c.body, &e)
		assert.Equal(t, c.status, status, "%s %s %s: %+v", c.method, c.path, c.body, e)
		assert.Equal(t, c.status, e.Status, "%s %s", c.method, c.path)
		assert.Contains(t, e.Error, c.mention, "%s %s %s", c.method, c.path, c.body)
	}

	// The same service answers well-formed requests; /health ignores what it does not know.
	assert.Equal(t, http.StatusOK, get(t, srv.URL+"/health?x=1&_=1733000000&cluster=nope&pretty=1", nil))
	assert.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/metrics/history?limit=10&since=5m", nil))
	assert.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/alerts/history?since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), nil))
}

func TestBenchmarkEndpoint(t *testing.T) {
	cli := etcdtest.Client(t)
	st := store.NewMemory()
	defer st.Close()
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, monitor.WithStore(st),
		monitor.WithBenchmarkLimits(monitor.BenchmarkLimits{MaxOps: 500, SLO: bench.SLO{MinWriteThroughput: 1}}))
	require.NoError(t, err)
	defer svc.Close()
	srv := httptest.NewServer(svc)
	defer srv.Close()

	var out struct {
		Cluster string          `json:"cluster"`
		Result  bench.Result    `json:"result"`
		SLO     bench.SLOReport `json:"slo"`
	}
	require.Equal(t, http.StatusOK, call(t, "POST", srv.URL+"/api/v1/performance/benchmark",
		`{"type":"write","ops":200,"connections":2,"clients":4}`, &out))
	assert.Equal(t, "local", out.Cluster)
	assert.Equal(t, bench.Write, out.Result.Workload)
	assert.EqualValues(t, 200, out.Result.Ops)
	assert.Equal(t, out.Result.Ops, out.Result.Successes+out.Result.Failures)
	require.Len(t, out.SLO.Objectives, 1, "the service's SLO is used")
	assert.Equal(t, "write_throughput", out.SLO.Objectives[0].Name)
	assert.True(t, out.SLO.Pass)
	stored, err := st.Benchmarks(etcdtest.Context(t, 5*time.Second), store.BenchmarkQuery{Cluster: "local"})
	require.NoError(t, err)
	require.Len(t, stored, 1, "the result is kept in the store")
	assert.Equal(t, "write", stored[0].Name)
	var listed monitor.BenchmarksResponse
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/performance/benchmarks?cluster=local&limit=5", &listed))
	require.Len(t, listed.Benchmarks, 1)
	var kept struct {
		Cluster string       `json:"cluster"`
		Result  bench.Result `json:"result"`
	}
	require.NoError(t, json.Unmarshal(listed.Benchmarks[0].Result, &kept))
	assert.Equal(t, "local", kept.Cluster)
	assert.EqualValues(t, 200, kept.Result.Ops)

	// The request's SLO replaces the service's.
	require.Equal(t, http.StatusOK, call(t, "POST", srv.URL+"/api/v1/performance/benchmark",
		`{"workload":"read","ops":50,"connections":1,"clients":2,"slo":{"minReadThroughput":1e12}}`, &out))
	require.Len(t, out.SLO.Objectives, 1)
	assert.False(t, out.SLO.Pass)

	var prom bytes.Buffer
	require.Equal(t, http.StatusOK, promGet(t, srv.URL+"/metrics", &prom))
	assert.Contains(t, prom.String(), `etcd_monitor_benchmark_throughput{cluster="local",workload="read"}`)

	// One benchmark at a time: while a two-second run goes (its keys are appearing),
	// another is refused with 409.
	prefix := "/bench/" + t.Name() + "/"
	first := make(chan int, 1)
	go func() {
		first <- call(t, "POST", srv.URL+"/api/v1/performance/benchmark",
			fmt.Sprintf(`{"type":"write","duration":"2s","connections":1,"clients":1,"keySize":128,"prefix":%q}`, prefix), nil)
	}()
	ctx := etcdtest.Context(t, 10*time.Second)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if assert.NoError(ct, err) {
			assert.Positive(ct, resp.Count, "the first benchmark writes")
		}
	}, 5*time.Second, 5*time.Millisecond)
	var busy monitor.ErrorResponse
	assert.Equal(t, http.StatusConflict, call(t, "POST", srv.URL+"/api/v1/performance/benchmark", `{"type":"write","ops":1}`, &busy))
	assert.Contains(t, busy.Error, "already running")
	assert.Equal(t, http.StatusOK, <-first)

	off, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, monitor.WithBenchmarkLimits(monitor.BenchmarkLimits{Disabled: true}))
	require.NoError(t, err)
	defer off.Close()
	offSrv := httptest.NewServer(off)
	defer offSrv.Close()
	var e monitor.ErrorResponse
	assert.Equal(t, http.StatusForbidden, call(t, "POST", offSrv.URL+"/api/v1/performance/benchmark", `{"type":"write","ops":1}`, &e))
}

func TestAPIAnswersWhileEtcdIsUnreachable(t *testing.T) {
	// Nothing listens on this port: every check fails, and the API says so at once.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	svc, url := service(t, []monitor.Cluster{{Name: "gone", Client: cli, Health: []health.Option{health.WithTimeout(100 * time.Millisecond)},
		Metrics: []metrics.Option{metrics.WithTimeout(100 * time.Millisecond)}}},
		monitor.WithHealthInterval(100*time.Millisecond), monitor.WithMetricsInterval(100*time.Millisecond))

	var h monitor.HealthResponse
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(nil, url+"/health", &h))
		if assert.Len(ct, h.Clusters, 1) {
			assert.NotEmpty(ct, h.Clusters[0].Error)
		}
	}, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, "ok", h.Status)
	assert.False(t, h.Clusters[0].Checked)
	var e monitor.ErrorResponse
	assert.Equal(t, http.StatusServiceUnavailable, get(t, url+"/api/v1/cluster/status", &e))
	assert.Contains(t, e.Error, "no health check has completed")
	assert.Equal(t, http.StatusServiceUnavailable, get(t, url+"/api/v1/metrics/current", &e))
	var alerts monitor.AlertsResponse
	assert.Equal(t, http.StatusOK, get(t, url+"/api/v1/alerts", &alerts))
	assert.Equal(t, []string{"gone"}, svc.Clusters())
	var hist struct {
		Checks []monitor.HealthSummary `json:"checks"`
	}
	assert.Equal(t, http.StatusOK, get(t, url+"/api/v1/cluster/history", &hist))
	require.NotEmpty(t, hist.Checks)
	assert.NotEmpty(t, hist.Checks[0].Error)
}

func TestSeveralClusters(t *testing.T) {
	a, b := etcdtest.Client(t), etcdtest.Client(t)
	reg := prometheus.NewPedanticRegistry()
	svc, err := monitor.New([]monitor.Cluster{{Name: "east", Client: a}, {Name: "west", Client: b}}, monitor.WithRegistry(reg))
	require.NoError(t, err)
	defer svc.Close()
	require.NoError(t, svc.Refresh(etcdtest.Context(t, 20*time.Second)))
	srv := httptest.NewServer(svc)
	defer srv.Close()

	var list struct {
		Clusters []string `json:"clusters"`
	}
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/clusters", &list))
	assert.Equal(t, []string{"east", "west"}, list.Clusters)
	var st monitor.StatusResponse
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/cluster/status?cluster=west", &st))
	assert.Equal(t, "west", st.Cluster)
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/cluster/status", &st))
	assert.Equal(t, "east", st.Cluster, "the first cluster is the default")
	var h monitor.HealthResponse
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/health", &h))
	require.Len(t, h.Clusters, 2)
	assert.True(t, h.Clusters[0].Healthy && h.Clusters[1].Healthy)

	// The pedantic registry checks every metric's consistency; both clusters are there.
	fams, err := reg.Gather()
	require.NoError(t, err)
	members := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "etcd_monitor_cluster_members" {
			continue
		}
		for _, m := range f.GetMetric() {
			members[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	assert.Equal(t, map[string]float64{"east": 1, "west": 1}, members)

	// Close takes the Service's collectors off the caller's registry.
	require.NoError(t, svc.Close())
	fams, err = reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		assert.NotContains(t, f.GetName(), "etcd_monitor_", "still registered after Close")
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	cli := etcdtest.Client(t)
	for name, tc := range map[string]struct {
		clusters []monitor.Cluster
		opts     []monitor.Option
	}{
		"no cluster":       {nil, nil},
		"nil client":       {[]monitor.Cluster{{Name: "a"}}, nil},
		"empty name":       {[]monitor.Cluster{{Client: cli}}, nil},
		"bad name":         {[]monitor.Cluster{{Name: "a b", Client: cli}}, nil},
		"duplicate name":   {[]monitor.Cluster{{Name: "a", Client: cli}, {Name: "a", Client: cli}}, nil},
		"health interval":  {[]monitor.Cluster{{Name: "a", Client: cli}}, []monitor.Option{monitor.WithHealthInterval(0)}},
		"metrics interval": {[]monitor.Cluster{{Name: "a", Client: cli}}, []monitor.Option{monitor.WithMetricsInterval(-time.Second)}},
		"history":          {[]monitor.Cluster{{Name: "a", Client: cli}}, []monitor.Option{monitor.WithHistorySize(0)}},
		"logger":           {[]monitor.Cluster{{Name: "a", Client: cli}}, []monitor.Option{monitor.WithLogger(nil)}},
		"alert option":     {[]monitor.Cluster{{Name: "a", Client: cli}}, []monitor.Option{monitor.WithAlertOptions(alert.WithDedupWindow(0))}},
		"health option":    {[]monitor.Cluster{{Name: "a", Client: cli, Health: []health.Option{health.WithTimeout(0)}}}, nil},
	} {
		_, err := monitor.New(tc.clusters, tc.opts...)
		assert.Error(t, err, name)
	}
}

func TestRunLifecycle(t *testing.T) {
	svc, err := monitor.New([]monitor.Cluster{{Name: "a", Client: etcdtest.Client(t)}}, monitor.WithHealthInterval(50*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	srv := httptest.NewServer(svc)
	defer srv.Close()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(ct, srv.URL+"/api/v1/cluster/status", nil))
	}, 10*time.Second, 10*time.Millisecond)
	assert.ErrorIs(t, svc.Run(ctx), monitor.ErrRunning)

	require.NoError(t, svc.Close())
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	assert.NoError(t, svc.Close(), "Close is idempotent")
	assert.ErrorIs(t, svc.Run(ctx), monitor.ErrClosed)
	assert.ErrorIs(t, svc.Refresh(ctx), monitor.ErrClosed)
	var e monitor.ErrorResponse
	assert.Equal(t, http.StatusServiceUnavailable, call(t, "POST", srv.URL+"/api/v1/performance/benchmark", `{"type":"write","ops":1}`, &e))
	assert.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/cluster/status", nil), "the last state is still served")
}

// extraMembers is a StatusSource that adds members a real cluster does not have.
type extraMembers struct {
	health.StatusSource
	members []health.Member
}

func (s extraMembers) Members(ctx context.Context) ([]health.Member, error) {
	ms, err := s.StatusSource.Members(ctx)
	return append(ms, s.members...), err
}

// Members with the same name, or none yet, are told apart by ID in the API and in
// /metrics: no series collides.
func TestMembersWithSharedOrEmptyNames(t *testing.T) {
	cli := etcdtest.Client(t)
	src := extraMembers{StatusSource: health.NewEtcdSource(cli), members: []health.Member{
		{ID: 0xd1, Name: "dup", ClientURLs: []string{"http://127.0.0.1:1"}},
		{ID: 0xd2, Name: "dup", ClientURLs: []string{"http://127.0.0.1:1"}},
		{ID: 0xd3, Name: ""},
	}}
	reg := prometheus.NewPedanticRegistry()
	svc, err := monitor.New([]monitor.Cluster{{Name: "a", Client: cli,
		Health: []health.Option{health.WithSource(src), health.WithTimeout(500 * time.Millisecond)}}}, monitor.WithRegistry(reg))
	require.NoError(t, err)
	defer svc.Close()
	require.NoError(t, svc.Refresh(etcdtest.Context(t, 20*time.Second)))

	fams, err := reg.Gather()
	require.NoError(t, err, "no two series share their labels")
	ids := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "etcd_monitor_member_reachable" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "member" {
					ids[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	assert.Len(t, ids, 4)
	for _, id := range []string{"d1", "d2", "d3"} {
		assert.Contains(t, ids, id)
		assert.Zero(t, ids[id], id)
	}

	srv := httptest.NewServer(svc)
	defer srv.Close()
	var members struct {
		Members []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"members"`
	}
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/cluster/members", &members))
	var got []string
	for _, m := range members.Members {
		got = append(got, m.ID)
	}
	assert.Subset(t, got, []string{"d1", "d2", "d3"})
	assert.Len(t, got, 4)
}

func TestNilOptionIsAnError(t *testing.T) {
	_, err := monitor.New([]monitor.Cluster{{Name: "a", Client: etcdtest.Client(t)}}, monitor.WithHistorySize(5), nil)
	assert.ErrorIs(t, err, monitor.ErrInvalidArgument)
	assert.ErrorContains(t, err, "option 1")
	_, err = monitor.New(nil)
	assert.ErrorIs(t, err, monitor.ErrInvalidArgument)
}

// Interrupt cancels a benchmark in flight at once and refuses new ones; reads go on.
func TestInterruptCancelsBenchmark(t *testing.T) {
	cli := etcdtest.Client(t)
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}})
	require.NoError(t, err)
	defer svc.Close()
	srv := httptest.NewServer(svc)
	defer srv.Close()

	prefix := "/bench/" + t.Name() + "/"
	answered := make(chan int, 1)
	var e monitor.ErrorResponse
	go func() {
		answered <- call(t, "POST", srv.URL+"/api/v1/performance/benchmark",
			fmt.Sprintf(`{"type":"write","duration":"20s","connections":1,"clients":1,"keySize":128,"prefix":%q}`, prefix), &e)
	}()
	ctx := etcdtest.Context(t, 20*time.Second)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if assert.NoError(ct, err) {
			assert.Positive(ct, resp.Count, "the benchmark writes")
		}
	}, 10*time.Second, 10*time.Millisecond)
	svc.Interrupt()
	select {
	case status := <-answered:
		assert.Equal(t, http.StatusServiceUnavailable, status)
		assert.Contains(t, e.Error, "shutting down")
	case <-ctx.Done():
		t.Fatal("the benchmark was not cancelled")
	}
	var again monitor.ErrorResponse
	assert.Equal(t, http.StatusServiceUnavailable, call(t, "POST", srv.URL+"/api/v1/performance/benchmark", `{"type":"write","ops":1}`, &again))
	assert.Equal(t, http.StatusOK, get(t, srv.URL+"/health", nil))
	svc.Interrupt() // idempotent
}

// A check that finds the cluster without a quorum is followed by another within
// ConfirmAfter, however long the health interval, so an outage is confirmed in seconds.
func TestDegradedClusterIsCheckedAgainSoon(t *testing.T) {
	// Waits out checks ConfirmAfter apart, in parallel with the tests above; the only
	// parallel test that starts a cluster (the etcd test framework allows one at a time).
	t.Parallel()
	c := etcdtest.NewCluster(t, 3)
	endpoints := map[string]string{}
	for _, m := range c.Members {
		endpoints[m.Name] = m.GRPCURL
	}
	cli := c.Client(0)
	c.StopMember(1)
	c.StopMember(2)
	svc, _ := service(t, []monitor.Cluster{{
		Name: "main", Client: cli,
		Health: []health.Option{health.WithTimeout(time.Second), health.WithEndpoints(endpoints)},
	}}, monitor.WithHealthInterval(time.Hour), monitor.WithMetricsInterval(time.Hour))
	// The first check, then two more, each at most ConfirmAfter (+ a 1s probe timeout
	// per member) after the one before; the wait allows twice that.
	bound := 2 * (monitor.ConfirmAfter + 3*time.Second)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		h, err := svc.HealthHistory(context.Background(), "main", monitor.HistoryQuery{})
		if !assert.NoError(ct, err) {
			return
		}
		assert.GreaterOrEqual(ct, len(h.Checks), 3, "checks of a cluster without quorum")
	}, 2*bound, 100*time.Millisecond)
}

// Close closes every connection the Service keeps to the members (the health checks'
// gRPC and HTTP connections, the /metrics scrapes'), so nothing of it outlives Close.
func TestCloseLeavesNothingRunning(t *testing.T) {
	cli := etcdtest.Client(t)
	_, err := cli.Get(context.Background(), "warm-up") // the client's own connection, before the count
	require.NoError(t, err)
	before := goleak.IgnoreCurrent()
	svc, err := monitor.New([]monitor.Cluster{{Name: "a", Client: cli}}, monitor.WithHealthInterval(50*time.Millisecond),
		monitor.WithMetricsInterval(50*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	require.NoError(t, svc.Refresh(ctx))
	require.NoError(t, svc.Close())
	require.NoError(t, <-done)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NoError(c, goleak.Find(append(etcdtest.LeakOptions(), before)...))
	}, 10*time.Second, 50*time.Millisecond)
}
