package monitor_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

// refreshed returns a Service over the shared etcd that has checked and collected n
// times, served on loopback.
func refreshed(t *testing.T, n int, opts ...monitor.Option) (*monitor.Service, string) {
	t.Helper()
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: etcdtest.Client(t)}}, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	ctx := etcdtest.Context(t, 60*time.Second)
	for range n {
		require.NoError(t, svc.Refresh(ctx))
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	return svc, srv.URL
}

func raw(t *testing.T, method, url, contentType, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// A Transport that leaves compression alone, so the test sees what the server sent.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func TestCompactJSONPrettyOnRequestGzipWhenAsked(t *testing.T) {
	_, url := refreshed(t, 1)
	resp, compact := raw(t, "GET", url+"/api/v1/clusters/local/status", "", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, string(bytes.TrimSpace(compact)), "\n", "compact by default")
	assert.Empty(t, resp.Header.Get("Content-Encoding"))

	resp, pretty := raw(t, "GET", url+"/api/v1/clusters/local/status?pretty=1", "", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(pretty), "\n  \"cluster\": \"local\"")
	var a, b map[string]any
	require.NoError(t, json.Unmarshal(compact, &a))
	require.NoError(t, json.Unmarshal(pretty, &b))
	delete(a, "activeAlerts")
	delete(b, "activeAlerts")
	assert.Equal(t, a, b, "the same answer, indented")

	for _, path := range []string{"/api/v1/clusters/local/metrics/history?limit=5&pretty=1", "/api/v1/openapi.json"} {
		resp, body := raw(t, "GET", url+path, "", "", map[string]string{"Accept-Encoding": "br;q=1.0, gzip;q=0.8"})
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"), path)
		assert.Contains(t, resp.Header.Values("Vary"), "Accept-Encoding", path)
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err, path)
		plain, err := io.ReadAll(zr)
		require.NoError(t, err, path)
		assert.True(t, json.Valid(plain), "%s: %s", path, plain)
	}
	resp, body := raw(t, "GET", url+"/api/v1/openapi.json", "", "", map[string]string{"Accept-Encoding": "gzip;q=0, identity"})
	assert.Empty(t, resp.Header.Get("Content-Encoding"), "q=0 refuses gzip")
	assert.True(t, json.Valid(body))
	resp, body = raw(t, "GET", url+"/api/v1/clusters/local/leader", "", "", map[string]string{"Accept-Encoding": "gzip"})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Less(t, len(body), 1024, "a short answer: %s", body)
	assert.Empty(t, resp.Header.Get("Content-Encoding"), "a body under 1 KB is not worth compressing")
	assert.True(t, json.Valid(body))
}

func TestRequestBodiesMustBeJSONAndSmall(t *testing.T) {
	_, url := refreshed(t, 0)
	for _, path := range []string{"/api/v1/clusters/local/benchmark", "/api/v1/performance/benchmark", "/api/v1/silences"} {
		for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
			resp, body := raw(t, "POST", url+path, ct, `{"workload":"write","ops":1}`, nil)
			assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, "%s %q: %s", path, ct, body)
			assert.Contains(t, string(body), "application/json")
		}
		resp, body := raw(t, "POST", url+path, "application/json; charset=utf-8", `{"workload":"write","ops":1,"prefix":"`+strings.Repeat("x", 70<<10)+`"}`, nil)
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s: %s", path, body)
		var e monitor.ErrorResponse
		require.NoError(t, json.Unmarshal(body, &e))
		assert.Equal(t, http.StatusRequestEntityTooLarge, e.Status)
	}
	resp, body := raw(t, "POST", url+"/api/v1/clusters/local/benchmark", "application/json; charset=utf-8", `{"workload":"write","ops":5,"connections":1,"clients":1}`, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
}

func TestPostNamesTheClusterWhenSeveral(t *testing.T) {
	a, b := etcdtest.Client(t), etcdtest.Client(t)
	svc, err := monitor.New([]monitor.Cluster{{Name: "east", Client: a}, {Name: "west", Client: b}})
	require.NoError(t, err)
	defer svc.Close()
	srv := httptest.NewServer(svc)
	defer srv.Close()
	body := `{"workload":"write","ops":5,"connections":1,"clients":1}`
	var e monitor.ErrorResponse
	require.Equal(t, http.StatusBadRequest, call(t, "POST", srv.URL+"/api/v1/performance/benchmark", body, &e))
	assert.Contains(t, e.Error, "east, west")
	var res monitor.BenchmarkResponse
	require.Equal(t, http.StatusOK, call(t, "POST", srv.URL+"/api/v1/performance/benchmark?cluster=west", body, &res))
	assert.Equal(t, "west", res.Cluster)
	require.Equal(t, http.StatusOK, call(t, "POST", srv.URL+"/api/v1/clusters/east/benchmark", body, &res))
	assert.Equal(t, "east", res.Cluster)
	// Reads keep their default: the first cluster.
	var st monitor.StatusResponse
	require.NoError(t, svc.Refresh(etcdtest.Context(t, 20*time.Second)))
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/cluster/status", &st))
	assert.Equal(t, "east", st.Cluster)
}

func TestHistoryTakesSinceUntilStepAndLimit(t *testing.T) {
	svc, url := refreshed(t, 4)
	var all monitor.HealthHistoryResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/history", &all))
	require.Len(t, all.Checks, 4)
	first, last := all.Checks[0].Time, all.Checks[3].Time

	var h monitor.HealthHistoryResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/history?limit=2", &h))
	assert.Equal(t, all.Checks[2:], h.Checks, "the newest, oldest first")
	since, until := all.Checks[1].Time.Format(time.RFC3339Nano), all.Checks[3].Time.Format(time.RFC3339Nano) // until is exclusive
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/cluster/history?since="+since+"&until="+until, &h))
	assert.Equal(t, all.Checks[1:3], h.Checks)
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/history?step=1h", &h))
	if first.Truncate(time.Hour).Equal(last.Truncate(time.Hour)) {
		assert.Equal(t, all.Checks[3:], h.Checks, "one per step: the step's latest")
	}

	var m monitor.MetricsHistoryResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/metrics/history?limit=3", &m))
	require.Len(t, m.Snapshots, 3)
	assert.True(t, m.Snapshots[0].Time.Before(m.Snapshots[2].Time), "oldest first")
	mh, err := svc.MetricsHistory(etcdtest.Context(t, 5*time.Second), "local", monitor.HistoryQuery{Limit: 3})
	require.NoError(t, err)
	assert.Equal(t, m.Snapshots[2].Time.UnixNano(), mh.Snapshots[2].Time.UnixNano(), "the accessor answers the same")
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/metrics/latency?step=3600", nil), "step in seconds")

	_, err = svc.MetricsHistory(etcdtest.Context(t, 5*time.Second), "local", monitor.HistoryQuery{Limit: 5000})
	assert.ErrorIs(t, err, monitor.ErrInvalidArgument)
	_, err = svc.HealthHistory(etcdtest.Context(t, 5*time.Second), "nope", monitor.HistoryQuery{})
	assert.ErrorIs(t, err, monitor.ErrUnknownCluster)
}

func TestHeavyRequestsAreBounded(t *testing.T) {
	svc, url := refreshed(t, 1, monitor.WithHeavyRequests(2))
	release := svc.FillHeavy()
	for _, path := range []string{"/api/v1/clusters/local/metrics/history", "/api/v1/metrics/latency", "/api/v1/clusters/local/history"} {
		resp, body := raw(t, "GET", url+path, "", "", nil)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s: %s", path, body)
		assert.Equal(t, "1", resp.Header.Get("Retry-After"), path)
	}
	assert.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/status", nil), "light requests are not bounded")
	release()
	assert.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/local/metrics/history", nil))
	_, err := monitor.New([]monitor.Cluster{{Name: "x", Client: etcdtest.Client(t)}}, monitor.WithHeavyRequests(0))
	assert.ErrorIs(t, err, monitor.ErrInvalidArgument)
}

// maxWriter records the largest single Write: a streamed answer writes in pieces.
type maxWriter struct {
	httptest.ResponseRecorder
	largest, total int
}

func (m *maxWriter) Write(b []byte) (int, error) {
	m.largest = max(m.largest, len(b))
	m.total += len(b)
	return m.ResponseRecorder.Write(b)
}

func TestMetricsHistoryIsStreamed(t *testing.T) {
	t.Parallel() // its own service and store
	svc, _ := refreshed(t, 50)
	for _, q := range []string{"", "&pretty=1"} {
		w := &maxWriter{ResponseRecorder: *httptest.NewRecorder()}
		svc.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/clusters/local/metrics/history?limit=1000"+q, nil))
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		var resp monitor.MetricsHistoryResponse
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp), q)
		assert.Len(t, resp.Snapshots, 50, q)
		assert.Equal(t, "local", resp.Cluster)
		// The answer went out in buffer-sized pieces, not as one buffer of the whole.
		assert.Less(t, w.largest, 40<<10, "largest write %d of %d bytes%s", w.largest, w.total, q)
		assert.Greater(t, w.total, 3*w.largest, "total %d%s", w.total, q)
	}
	// An empty history is valid JSON too, compact and pretty.
	svc2, _ := refreshed(t, 0)
	for _, q := range []string{"", "&pretty=1"} {
		w := httptest.NewRecorder()
		svc2.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/metrics/history?limit=5"+q, nil))
		var resp monitor.MetricsHistoryResponse
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp), "%s", w.Body.String())
		assert.NotNil(t, resp.Snapshots, fmt.Sprintf("%q", w.Body.String()))
	}
}
