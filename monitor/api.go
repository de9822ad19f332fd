package monitor

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/etcd-monitor/etcd-monitor/alert"
)

// The API's paths. Cluster-scoped paths take the cluster's name in the path; each has
// a legacy alias (PathClusterStatus, ...) that takes it as ?cluster=NAME and answers the
// same.
const (
	PathHealth     = "/health"
	PathOpenAPI    = "/api/v1/openapi.json"
	PathClusters   = "/api/v1/clusters"
	PathCluster    = "/api/v1/clusters/{name}"
	PathAlerts     = "/api/v1/alerts"
	PathAlertsHist = "/api/v1/alerts/history"
	// PathAlertsHistory is PathAlertsHist.
	PathAlertsHistory = PathAlertsHist
	PathNotifications = "/api/v1/alerts/notifications"
	PathSilences      = "/api/v1/silences"
	PathSilence       = "/api/v1/silences/{id}"
	PathBenchmarks    = "/api/v1/performance/benchmarks"
	PathPrometheus    = "/metrics"

	// Legacy aliases of the cluster-scoped paths.
	PathClusterStatus  = "/api/v1/cluster/status"
	PathClusterMembers = "/api/v1/cluster/members"
	PathClusterLeader  = "/api/v1/cluster/leader"
	PathClusterHistory = "/api/v1/cluster/history"
	PathMetricsCurrent = "/api/v1/metrics/current"
	PathMetricsHistory = "/api/v1/metrics/history"
	PathMetricsLatency = "/api/v1/metrics/latency"
	PathBenchmark      = "/api/v1/performance/benchmark"

	maxBenchmarkBody    = 64 << 10
	maxSilenceBody      = 64 << 10
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
	// DefaultHeavyRequests is how many history requests (the heavy ones: up to 1000
	// snapshots each) are answered at once; more get 429 with Retry-After.
	DefaultHeavyRequests = 4
)

// ErrorResponse is the body of every answer that is not a success.
type ErrorResponse struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

type handler func(w http.ResponseWriter, r *http.Request, q query) (any, error)

// apiError carries an HTTP status with a message for the client.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// route is one endpoint: what serves it and what documents it. The mux and the OpenAPI
// document are both built from the route table, so neither can drift from the other.
type route struct {
	method string
	path   string // a pattern; {name} is a cluster's name
	// alias is a legacy path answering the same, with the cluster as ?cluster=NAME
	// (optional there: the first cluster, or for alerts every cluster).
	alias   string
	params  []string // query parameters besides cluster and pretty
	summary string
	body    any // the request body's type, for POST
	resp    any // the answer's type
	h       handler
	admin   bool // changes something: the daemon lets only admin tokens through
	heavy   bool // at most opts.heavyRequests at once
	lenient bool // ignores unknown query parameters
}

func (s *Service) routeTable() []route {
	hist := []string{"limit", "since", "until", "step"}
	return []route{
		{method: "GET", path: PathHealth, h: s.getHealth, resp: HealthResponse{}, lenient: true,
			summary: "Liveness of the monitor and the verdict of each cluster's latest check; unknown query parameters are ignored (cache-busting probes)."},
		{method: "GET", path: PathOpenAPI, h: s.getOpenAPI, resp: json.RawMessage{}, summary: "This document."},
		{method: "GET", path: PathClusters, h: s.getClusters, resp: ClustersResponse{}, summary: "The monitored clusters' names."},
		{method: "GET", path: PathCluster + "/status", alias: PathClusterStatus, h: s.getStatus, resp: StatusResponse{},
			summary: "The cluster's health, quorum, leader, split brain, partitions and alarms as of its latest check."},
		{method: "GET", path: PathCluster + "/members", alias: PathClusterMembers, h: s.getMembers, resp: MembersResponse{},
			summary: "Every member as the latest health check saw it."},
		{method: "GET", path: PathCluster + "/leader", alias: PathClusterLeader, h: s.getLeader, resp: LeaderResponse{},
			summary: "The leader and the leader change history."},
		{method: "GET", path: PathCluster + "/history", alias: PathClusterHistory, params: hist, h: s.getClusterHistory, resp: HealthHistoryResponse{}, heavy: true,
			summary: "Health check summaries, oldest first; from the store when it keeps history."},
		{method: "GET", path: PathCluster + "/metrics/current", alias: PathMetricsCurrent, h: s.getMetricsCurrent, resp: MetricsResponse{},
			summary: "The latest metric snapshot."},
		{method: "GET", path: PathCluster + "/metrics/history", alias: PathMetricsHistory, params: hist, h: s.getMetricsHistory, resp: MetricsHistoryResponse{}, heavy: true,
			summary: "Metric snapshots, oldest first; from the store when it keeps history. Streamed."},
		{method: "GET", path: PathCluster + "/metrics/latency", alias: PathMetricsLatency, params: hist, h: s.getLatency, resp: LatencyResponse{}, heavy: true,
			summary: "Probe latency now, by member, and over history."},
		{method: "GET", path: PathCluster + "/alerts", params: []string{"severity", "state"}, h: s.getAlerts, resp: AlertsResponse{},
			summary: "The cluster's pending and firing alerts with what silences or inhibits them."},
		{method: "GET", path: PathCluster + "/alerts/history", params: []string{"severity", "limit", "since"}, h: s.getAlertsHistory, resp: AlertsResponse{},
			summary: "The cluster's alert transitions, oldest first."},
		{method: "POST", path: PathCluster + "/benchmark", alias: PathBenchmark, h: s.postBenchmark, body: BenchmarkRequestBody{}, resp: BenchmarkResponse{}, admin: true,
			summary: "Runs a benchmark against the cluster and answers with its result (Content-Type: application/json). " +
				"On the alias, ?cluster= is required when more than one cluster is monitored."},
		{method: "GET", path: PathCluster + "/benchmarks", params: []string{"limit"}, h: s.getBenchmarks, resp: BenchmarksResponse{},
			summary: "The cluster's stored benchmark results, newest first."},
		{method: "GET", path: PathAlerts, params: []string{"cluster", "severity", "state"}, h: s.getAlerts, resp: AlertsResponse{},
			summary: "Pending and firing alerts of every cluster (or ?cluster=)."},
		{method: "GET", path: PathAlertsHist, params: []string{"cluster", "severity", "limit", "since"}, h: s.getAlertsHistory, resp: AlertsResponse{},
			summary: "Alert transitions of every cluster (or ?cluster=), merged by time, oldest first."},
		{method: "GET", path: PathNotifications, params: []string{"receiver", "limit"}, h: s.getNotifications, resp: NotificationsResponse{},
			summary: "The notification log, newest first."},
		{method: "GET", path: PathSilences, h: s.getSilences, resp: SilencesResponse{}, summary: "Every silence, newest first."},
		{method: "POST", path: PathSilences, h: s.postSilence, body: SilenceRequest{}, resp: alert.Silence{}, admin: true,
			summary: "Creates a silence, or replaces the unexpired one its id names (Alertmanager's API v2 shape; Content-Type: application/json)."},
		{method: "GET", path: PathSilence, h: s.getSilence, resp: alert.Silence{}, summary: "One silence."},
		{method: "DELETE", path: PathSilence, h: s.deleteSilence, resp: alert.Silence{}, admin: true,
			summary: "Expires a silence (it stays listed, as expired) and answers with it."},
		{method: "GET", path: PathBenchmarks, params: []string{"cluster", "limit"}, h: s.getBenchmarks, resp: BenchmarksResponse{},
			summary: "Stored benchmark results of every cluster (or ?cluster=), newest first."},
	}
}

func (s *Service) routes() *http.ServeMux {
	mux := http.NewServeMux()
	byPath := map[string][]route{}
	var order []string
	add := func(path string, rt route) {
		if _, ok := byPath[path]; !ok {
			order = append(order, path)
		}
		byPath[path] = append(byPath[path], rt)
	}
	for _, rt := range s.routeTable() {
		add(rt.path, rt)
		if rt.alias != "" {
			add(rt.alias, rt)
		}
	}
	for _, path := range order {
		mux.Handle(path, s.dispatch(path, byPath[path]))
	}
	prom := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	mux.HandleFunc(PathPrometheus, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s; use GET", r.Method, r.URL.Path), http.MethodGet)
			return
		}
		prom.ServeHTTP(w, r)
	})
	s.maintenanceRoutes(mux)
	s.pageRoutes(mux)
	return mux
}

// query is a request's validated query parameters.
type query struct {
	cluster  *clusterState
	all      bool // no cluster named: endpoints over every cluster cover them all
	hist     HistoryQuery
	limit    int
	since    time.Time
	severity *alert.Severity
	state    alert.State
	receiver string
	pretty   bool
}

// dispatch serves one path: it picks the route of the method, checks the query and
// the body's type, bounds heavy requests, and answers with the handler's value as JSON
// or its error as an ErrorResponse.
func (s *Service) dispatch(path string, rts []route) http.Handler {
	var allow []string
	for _, rt := range rts {
		allow = append(allow, rt.method)
		if rt.method == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	allowed := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet
		}
		i := slices.IndexFunc(rts, func(rt route) bool { return rt.method == m })
		if i < 0 {
			writeError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s; use %s", r.Method, r.URL.Path, allowed), allowed)
			return
		}
		rt := rts[i]
		aliased := path != rt.path
		q, err := s.parseQuery(r, rt, aliased)
		if err != nil {
			writeError(w, err, "")
			return
		}
		if rt.body != nil {
			if err := jsonBody(r); err != nil {
				writeError(w, err, "")
				return
			}
		}
		if rt.method == http.MethodPost && strings.Contains(rt.path, "{name}") && aliased && q.all && len(s.clusters) > 1 {
			writeError(w, errorf(http.StatusBadRequest, "%d clusters are monitored: name the one to act on with ?cluster= (one of %s) or use %s",
				len(s.clusters), strings.Join(s.Clusters(), ", "), rt.path), "")
			return
		}
		if rt.heavy {
			select {
			case s.heavy <- struct{}{}:
				defer func() { <-s.heavy }()
			default:
				w.Header().Set("Retry-After", "1")
				writeError(w, errorf(http.StatusTooManyRequests, "too many history requests at once (at most %d); retry shortly", cap(s.heavy)), "")
				return
			}
		}
		v, err := rt.h(w, r, q)
		if err != nil {
			writeError(w, err, "")
			return
		}
		respond(w, r, http.StatusOK, v, q.pretty)
	})
}

// jsonBody refuses a request whose body is not declared JSON: a browser sends a form or
// text/plain cross-origin without a preflight, never application/json.
func jsonBody(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type %q: %s %s takes application/json", ct, r.Method, r.URL.Path)
	}
	return nil
}

// readBody reads at most limit bytes of the body: more is a 413.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errorf(http.StatusRequestEntityTooLarge, "body over %d bytes", limit)
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "read body: %v", err)
	}
	return body, nil
}

func (s *Service) parseQuery(r *http.Request, rt route, aliased bool) (query, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if rt.lenient {
		// Only pretty counts; whatever else a probe adds (a cache buster) is ignored.
		p := vals.Get("pretty")
		return query{cluster: s.clusters[0], all: true, limit: defaultHistoryLimit, pretty: p == "1" || p == "true"}, nil
	}
	if err != nil {
		return query{}, errorf(http.StatusBadRequest, "malformed query string: %v", err)
	}
	params := slices.Clone(rt.params)
	if aliased && !slices.Contains(params, "cluster") {
		params = append(params, "cluster")
	}
	params = append(params, "pretty")
	q := query{limit: defaultHistoryLimit}
	for name, v := range vals {
		if !slices.Contains(params, name) {
			return q, errorf(http.StatusBadRequest, "unknown query parameter %q (want %s)", name, strings.Join(params, ", "))
		}
		if len(v) != 1 {
			return q, errorf(http.StatusBadRequest, "query parameter %q given %d times", name, len(v))
		}
	}
	switch v := vals.Get("pretty"); v {
	case "", "0", "false":
	case "1", "true":
		q.pretty = true
	default:
		return q, errorf(http.StatusBadRequest, "bad pretty %q: want 1 or 0", v)
	}
	name := r.PathValue("name")
	if name == "" {
		name = vals.Get("cluster")
	}
	q.all = name == ""
	c, ok := s.cluster(name)
	if !ok {
		return q, errorf(http.StatusNotFound, "unknown cluster %q (have %s)", name, strings.Join(s.Clusters(), ", "))
	}
	q.cluster = c
	if v := vals.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHistoryLimit {
			return q, errorf(http.StatusBadRequest, "bad limit %q: want an integer from 1 to %d", v, maxHistoryLimit)
		}
		q.limit = n
	}
	q.hist.Limit = q.limit
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.hist.Since}, {"until", &q.hist.Until}} {
		v := vals.Get(p.name)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*p.t = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			*p.t = time.Now().Add(-d)
		} else {
			return q, errorf(http.StatusBadRequest, "bad %s %q: want an RFC 3339 time or a positive duration ago such as 15m", p.name, v)
		}
	}
	q.since = q.hist.Since
	if !q.hist.Until.IsZero() && !q.hist.Until.After(q.hist.Since) {
		return q, errorf(http.StatusBadRequest, "until %s is not after since %s", q.hist.Until.Format(time.RFC3339), q.hist.Since.Format(time.RFC3339))
	}
	if v := vals.Get("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			if f, ferr := strconv.ParseFloat(v, 64); ferr == nil && f > 0 && f < 1e9 {
				d, err = time.Duration(f*float64(time.Second)), nil
			} else {
				return q, errorf(http.StatusBadRequest, "bad step %q: want a positive duration such as 1m or a number of seconds", v)
			}
		}
		q.hist.Step = d
	}
	if v := vals.Get("severity"); v != "" {
		sev, err := alert.ParseSeverity(v)
		if err != nil {
			return q, errorf(http.StatusBadRequest, "bad severity %q: want info, warning or critical", v)
		}
		q.severity = &sev
	}
	q.receiver = vals.Get("receiver")
	if v := vals.Get("state"); v != "" {
		if v != string(alert.Pending) && v != string(alert.Firing) {
			return q, errorf(http.StatusBadRequest, "bad state %q: want pending or firing", v)
		}
		q.state = alert.State(v)
	}
	return q, nil
}

// streamer is an answer too large to build in memory: it writes itself, item by item.
type streamer interface {
	streamJSON(w io.Writer, pretty bool) error
}

var gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if c := strings.ToLower(strings.TrimSpace(coding)); c != "gzip" && c != "*" {
			continue
		}
		if qv, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
			if f, err := strconv.ParseFloat(qv, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// gzipMin is the smallest body respond gzips: below it, compressing costs more CPU than
// the bytes it saves are worth (most status answers are a few hundred bytes).
const gzipMin = 1 << 10

// respond writes v as JSON: compact unless pretty, gzipped when the client accepts it and
// the body is at least gzipMin bytes (a streamed body always), streamed when v is a
// streamer.
func respond(w http.ResponseWriter, r *http.Request, status int, v any, pretty bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	if st, ok := v.(streamer); ok {
		out, finish := encoder(w, r)
		w.WriteHeader(status)
		bw := bufio.NewWriterSize(out, 32<<10)
		if err := st.streamJSON(bw, pretty); err != nil {
			// The status is sent: cut the connection so the client sees a broken answer
			// rather than a truncated one that parses.
			panic(http.ErrAbortHandler)
		}
		bw.Flush()
		finish()
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		json.NewEncoder(&buf).Encode(ErrorResponse{Status: status, Error: "encode response: " + err.Error()})
	}
	var out io.Writer = w
	finish := func() {}
	if buf.Len() >= gzipMin {
		out, finish = encoder(w, r)
	}
	w.WriteHeader(status)
	out.Write(buf.Bytes())
	finish()
}

// encoder returns where to write the body (gzipped when the client accepts it) and a
// function that finishes it.
func encoder(w http.ResponseWriter, r *http.Request) (io.Writer, func()) {
	if r == nil || r.Method == http.MethodHead || !acceptsGzip(r) {
		return w, func() {}
	}
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Del("Content-Length")
	gz := gzipPool.Get().(*gzip.Writer)
	gz.Reset(w)
	return gz, func() {
		gz.Close()
		gz.Reset(io.Discard)
		gzipPool.Put(gz)
	}
}

// statusOf maps an error to an HTTP status and a message for the client.
func statusOf(err error) (int, string) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.msg
	case errors.Is(err, ErrUnknownCluster):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, ErrNoData):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, ErrInvalidArgument):
		return http.StatusBadRequest, err.Error()
	}
	return http.StatusInternalServerError, err.Error()
}

// writeError answers with err as an ErrorResponse (never gzipped: it is short).
func writeError(w http.ResponseWriter, err error, allow string) {
	status, msg := statusOf(err)
	if allow != "" {
		w.Header().Set("Allow", allow)
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	respond(w, nil, status, ErrorResponse{Status: status, Error: msg}, false)
}

func (s *Service) getHealth(_ http.ResponseWriter, _ *http.Request, _ query) (any, error) {
	return s.Health(), nil
}

func (s *Service) getOpenAPI(_ http.ResponseWriter, _ *http.Request, _ query) (any, error) {
	return json.RawMessage(s.openapi), nil
}

func (s *Service) getClusters(_ http.ResponseWriter, _ *http.Request, _ query) (any, error) {
	return ClustersResponse{Clusters: s.Clusters()}, nil
}

func (s *Service) getStatus(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	return s.ClusterStatus(q.cluster.name)
}

func (s *Service) getMembers(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	return s.Members(q.cluster.name)
}

func (s *Service) getLeader(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	return s.Leader(q.cluster.name)
}

func (s *Service) getClusterHistory(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	return s.HealthHistory(r.Context(), q.cluster.name, q.hist)
}

func (s *Service) getMetricsCurrent(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	return s.CurrentMetrics(q.cluster.name)
}

// metricsStream writes a MetricsHistoryResponse one snapshot at a time, so that a
// thousand snapshots never sit in memory as one 10 MB buffer.
type metricsStream struct {
	cluster string
	snaps   []point
}

func (m metricsStream) streamJSON(w io.Writer, pretty bool) error {
	name, err := json.Marshal(m.cluster)
	if err != nil {
		return err
	}
	open, sep, closing, indent := `{"cluster":%s,"snapshots":[`, ",", "]}\n", ""
	if pretty {
		open, sep, closing, indent = "{\n  \"cluster\": %s,\n  \"snapshots\": [\n    ", ",\n    ", "\n  ]\n}\n", "    "
	}
	if len(m.snaps) == 0 {
		open, closing = strings.TrimRight(open, "\n "), "]}\n"
		if pretty {
			closing = "]\n}\n"
		}
	}
	if _, err := fmt.Fprintf(w, open, name); err != nil {
		return err
	}
	for i, sn := range m.snaps {
		if i > 0 {
			if _, err := io.WriteString(w, sep); err != nil {
				return err
			}
		}
		var b []byte
		if pretty {
			b, err = json.MarshalIndent(sn.wire(), indent, "  ")
		} else {
			b, err = json.Marshal(sn.wire())
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, closing)
	return err
}

func (s *Service) getMetricsHistory(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	hq, err := q.hist.normalize()
	if err != nil {
		return nil, err
	}
	return metricsStream{cluster: q.cluster.name, snaps: s.rawHistory(r.Context(), q.cluster, hq)}, nil
}

func (s *Service) getLatency(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	return s.LatencyHistory(r.Context(), q.cluster.name, q.hist)
}

func (q query) alertQuery() AlertQuery {
	aq := AlertQuery{Severity: q.severity, State: q.state, Since: q.since, Limit: q.limit}
	if !q.all {
		aq.Cluster = q.cluster.name
	}
	return aq
}

func (s *Service) getAlerts(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	as, err := s.ActiveAlerts(q.alertQuery())
	return AlertsResponse{Alerts: as}, err
}

func (s *Service) getAlertsHistory(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	as, err := s.alertHistory(r.Context(), q.alertQuery())
	return AlertsResponse{Alerts: as}, err
}

func (s *Service) getBenchmarks(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	cluster := ""
	if !q.all {
		cluster = q.cluster.name
	}
	bs, err := s.Benchmarks(r.Context(), cluster, q.limit)
	if err != nil {
		return nil, err
	}
	return BenchmarksResponse{Benchmarks: bs}, nil
}
