package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// The API's paths.
const (
	PathHealth          = "/health"
	PathClusters        = "/api/v1/clusters"
	PathClusterStatus   = "/api/v1/cluster/status"
	PathClusterMembers  = "/api/v1/cluster/members"
	PathClusterLeader   = "/api/v1/cluster/leader"
	PathClusterHistory  = "/api/v1/cluster/history"
	PathMetricsCurrent  = "/api/v1/metrics/current"
	PathMetricsHistory  = "/api/v1/metrics/history"
	PathMetricsLatency  = "/api/v1/metrics/latency"
	PathAlerts          = "/api/v1/alerts"
	PathAlertsHistory   = "/api/v1/alerts/history"
	PathNotifications   = "/api/v1/alerts/notifications"
	PathSilences        = "/api/v1/silences"
	PathBenchmark       = "/api/v1/performance/benchmark"
	PathBenchmarks      = "/api/v1/performance/benchmarks"
	PathPrometheus      = "/metrics"
	maxBenchmarkBody    = 64 << 10
	maxSilenceBody      = 64 << 10
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
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

func (s *Service) routes() *http.ServeMux {
	mux := http.NewServeMux()
	get := func(path string, params []string, h handler) {
		mux.Handle(path, s.endpoint(http.MethodGet, params, h))
	}
	get(PathHealth, nil, s.getHealth)
	get(PathClusters, nil, s.getClusters)
	get(PathClusterStatus, []string{"cluster"}, s.getStatus)
	get(PathClusterMembers, []string{"cluster"}, s.getMembers)
	get(PathClusterLeader, []string{"cluster"}, s.getLeader)
	get(PathClusterHistory, []string{"cluster", "limit", "since"}, s.getClusterHistory)
	get(PathMetricsCurrent, []string{"cluster"}, s.getMetricsCurrent)
	get(PathMetricsHistory, []string{"cluster", "limit", "since"}, s.getMetricsHistory)
	get(PathMetricsLatency, []string{"cluster", "limit", "since"}, s.getLatency)
	get(PathAlerts, []string{"cluster", "severity", "state"}, s.getAlerts)
	get(PathAlertsHistory, []string{"cluster", "severity", "limit", "since"}, s.getAlertsHistory)
	get(PathNotifications, []string{"receiver", "limit"}, s.getNotifications)
	mux.Handle(PathBenchmark, s.endpoint(http.MethodPost, []string{"cluster"}, s.postBenchmark))
	get(PathBenchmarks, []string{"cluster", "limit"}, s.getBenchmarks)
	mux.Handle(PathSilences, s.methods(map[string]handler{http.MethodGet: s.getSilences, http.MethodPost: s.postSilence}))
	mux.Handle(PathSilences+"/{id}", s.methods(map[string]handler{http.MethodGet: s.getSilence, http.MethodDelete: s.deleteSilence}))
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
	limit    int
	since    time.Time
	severity *alert.Severity
	state    string // pending or firing
	receiver string
	all      bool // no cluster named: endpoints over every cluster cover them all
}

// endpoint checks the method and the query parameters, then answers with h's value as
// JSON or h's error as an Error.
func (s *Service) endpoint(method string, params []string, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			writeError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s; use %s", r.Method, r.URL.Path, method), method)
			return
		}
		q, err := s.parseQuery(r, params)
		if err != nil {
			writeError(w, err, "")
			return
		}
		v, err := h(w, r, q)
		if err != nil {
			writeError(w, err, "")
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// methods is endpoint for a path that answers several methods, none with query
// parameters.
func (s *Service) methods(hs map[string]handler) http.Handler {
	allow := slices.Sorted(maps.Keys(hs))
	if _, ok := hs[http.MethodGet]; ok {
		allow = append(allow, http.MethodHead)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet
		}
		h, ok := hs[m]
		if !ok {
			writeError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s; use %s", r.Method, r.URL.Path,
				strings.Join(allow, ", ")), strings.Join(allow, ", "))
			return
		}
		s.endpoint(m, nil, h).ServeHTTP(w, r)
	})
}

func (s *Service) parseQuery(r *http.Request, allowed []string) (query, error) {
	vals, err := urlQuery(r)
	if err != nil {
		return query{}, err
	}
	q := query{limit: defaultHistoryLimit}
	for name, v := range vals {
		if !contains(allowed, name) {
			if len(allowed) == 0 {
				return q, errorf(http.StatusBadRequest, "unknown query parameter %q: %s takes none", name, r.URL.Path)
			}
			return q, errorf(http.StatusBadRequest, "unknown query parameter %q (want %s)", name, strings.Join(allowed, ", "))
		}
		if len(v) != 1 {
			return q, errorf(http.StatusBadRequest, "query parameter %q given %d times", name, len(v))
		}
	}
	name := vals.Get("cluster")
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
	if v := vals.Get("since"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			q.since = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			q.since = time.Now().Add(-d)
		} else {
			return q, errorf(http.StatusBadRequest, "bad since %q: want an RFC 3339 time or a positive duration such as 15m", v)
		}
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
		q.state = v
	}
	return q, nil
}

func urlQuery(r *http.Request) (url.Values, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "malformed query string: %v", err)
	}
	return vals, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		json.NewEncoder(&buf).Encode(ErrorResponse{Status: status, Error: "encode response: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, err error, allow string) {
	status, msg := http.StatusInternalServerError, err.Error()
	var ae *apiError
	if errors.As(err, &ae) {
		status, msg = ae.status, ae.msg
	}
	if allow != "" {
		w.Header().Set("Allow", allow)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, ErrorResponse{Status: status, Error: msg})
}

// ClusterHealth is one cluster's line in /health.
type ClusterHealth struct {
	Name      string    `json:"name"`
	Checked   bool      `json:"checked"`
	Healthy   bool      `json:"healthy"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	Error     string    `json:"error,omitempty"`
}

// HealthResponse is the body of GET /health. The answer is 200 while the service runs:
// it says whether the monitor is up; the clusters' health is in Clusters.
type HealthResponse struct {
	Status   string          `json:"status"`
	Uptime   string          `json:"uptime"`
	Clusters []ClusterHealth `json:"clusters"`
	// Warnings lists unsafe settings (see WithWarnings).
	Warnings []string `json:"warnings,omitempty"`
}

func (s *Service) getHealth(_ http.ResponseWriter, _ *http.Request, _ query) (any, error) {
	resp := HealthResponse{Status: "ok", Uptime: time.Since(s.started).Round(time.Second).String(), Warnings: s.opts.warnings}
	for _, c := range s.clusters {
		h := c.health()
		ch := ClusterHealth{Name: c.name, Checked: h.report != nil, CheckedAt: h.at}
		if h.report != nil {
			ch.Healthy = h.report.Healthy
		}
		if h.err != nil {
			ch.Error = h.err.Error()
		}
		resp.Clusters = append(resp.Clusters, ch)
	}
	return resp, nil
}

func (s *Service) getClusters(_ http.ResponseWriter, _ *http.Request, _ query) (any, error) {
	return map[string][]string{"clusters": s.Clusters()}, nil
}

// report returns the cluster's latest health report or a 503 before the first check.
func report(c *clusterState) (healthView, error) {
	h := c.health()
	if h.report == nil {
		msg := "no health check has completed yet"
		if h.err != nil {
			msg += ": " + h.err.Error()
		}
		return h, errorf(http.StatusServiceUnavailable, "cluster %s: %s", c.name, msg)
	}
	return h, nil
}

// StatusResponse is the body of GET /api/v1/cluster/status.
type StatusResponse struct {
	Cluster        string            `json:"cluster"`
	CheckedAt      time.Time         `json:"checkedAt"`
	Healthy        bool              `json:"healthy"`
	ClusterID      health.ID         `json:"clusterID"`
	Leader         health.Leader     `json:"leader"`
	Quorum         health.Quorum     `json:"quorum"`
	Members        int               `json:"members"`
	Reachable      int               `json:"reachable"`
	SplitBrain     health.SplitBrain `json:"splitBrain"`
	Partition      health.Partition  `json:"partition"`
	Alarms         []health.Alarm    `json:"alarms"`
	RevisionSpread int64             `json:"revisionSpread"`
	ActiveAlerts   int               `json:"activeAlerts"`
	Error          string            `json:"error,omitempty"`
	// Versions maps each reachable member's ID to its etcd version.
	Versions      map[health.ID]string `json:"versions"`
	CheckDuration string               `json:"checkDuration"`
	LastChange    *health.LeaderChange `json:"lastLeaderChange,omitempty"`
}

func (s *Service) getStatus(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	h, err := report(q.cluster)
	if err != nil {
		return nil, err
	}
	r := h.report
	resp := StatusResponse{
		Cluster: q.cluster.name, CheckedAt: h.at, Healthy: r.Healthy, ClusterID: r.ClusterID,
		Leader: r.Leader, Quorum: r.Quorum, Members: len(r.Members), SplitBrain: r.SplitBrain, Partition: r.Partition,
		Alarms: r.Alarms, RevisionSpread: r.RevisionSpread, ActiveAlerts: len(q.cluster.active()),
		Versions: map[health.ID]string{}, CheckDuration: r.Duration.String(),
	}
	if h.err != nil {
		resp.Error = h.err.Error()
	}
	for _, m := range r.Members {
		if m.Reachable {
			resp.Reachable++
			resp.Versions[m.Member.ID] = m.Version
		}
	}
	if n := len(r.LeaderHistory); n > 0 {
		lc := r.LeaderHistory[n-1]
		resp.LastChange = &lc
	}
	return resp, nil
}

// MembersResponse is the body of GET /api/v1/cluster/members.
type MembersResponse struct {
	Cluster   string                `json:"cluster"`
	CheckedAt time.Time             `json:"checkedAt"`
	Members   []health.MemberStatus `json:"members"`
}

func (s *Service) getMembers(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	h, err := report(q.cluster)
	if err != nil {
		return nil, err
	}
	return MembersResponse{Cluster: q.cluster.name, CheckedAt: h.at, Members: h.report.Members}, nil
}

// LeaderResponse is the body of GET /api/v1/cluster/leader. Member is nil when there is
// no leader.
type LeaderResponse struct {
	Cluster   string                `json:"cluster"`
	CheckedAt time.Time             `json:"checkedAt"`
	Leader    health.Leader         `json:"leader"`
	Member    *health.MemberStatus  `json:"member,omitempty"`
	Changes   []health.LeaderChange `json:"changes"`
}

func (s *Service) getLeader(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	h, err := report(q.cluster)
	if err != nil {
		return nil, err
	}
	resp := LeaderResponse{Cluster: q.cluster.name, CheckedAt: h.at, Leader: h.report.Leader, Changes: h.report.LeaderHistory}
	if m, ok := h.report.Member(h.report.Leader.ID); ok && h.report.Leader.ID != 0 {
		resp.Member = &m
	}
	return resp, nil
}

func (s *Service) getClusterHistory(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	all := q.cluster.healthHistory()
	out := make([]HealthSummary, 0, min(len(all), q.limit))
	for _, h := range all {
		if !h.Time.Before(q.since) {
			out = append(out, h)
		}
	}
	if len(out) > q.limit {
		out = out[len(out)-q.limit:]
	}
	return map[string]any{"cluster": q.cluster.name, "checks": out}, nil
}

func snapshot(c *clusterState) (*metrics.Snapshot, error) {
	snap, err := c.metrics()
	if snap == nil {
		msg := "no metrics have been collected yet"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, errorf(http.StatusServiceUnavailable, "cluster %s: %s", c.name, msg)
	}
	return snap, nil
}

// MetricsResponse is the body of GET /api/v1/metrics/current.
type MetricsResponse struct {
	Cluster  string            `json:"cluster"`
	Snapshot *metrics.Snapshot `json:"snapshot"`
}

func (s *Service) getMetricsCurrent(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	snap, err := snapshot(q.cluster)
	if err != nil {
		return nil, err
	}
	return MetricsResponse{Cluster: q.cluster.name, Snapshot: snap}, nil
}

// history returns the cluster's snapshots since q.since, the newest q.limit of them.
func history(q query) []*metrics.Snapshot {
	all := q.cluster.collector.History()
	out := make([]*metrics.Snapshot, 0, min(len(all), q.limit))
	for _, s := range all {
		if !s.Time.Before(q.since) {
			out = append(out, s)
		}
	}
	if len(out) > q.limit {
		out = out[len(out)-q.limit:]
	}
	return out
}

// MetricsHistoryResponse is the body of GET /api/v1/metrics/history (oldest first).
type MetricsHistoryResponse struct {
	Cluster   string              `json:"cluster"`
	Snapshots []*metrics.Snapshot `json:"snapshots"`
}

func (s *Service) getMetricsHistory(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	return MetricsHistoryResponse{Cluster: q.cluster.name, Snapshots: history(q)}, nil
}

// LatencyPoint is the cluster-wide probe latency of one snapshot.
type LatencyPoint struct {
	Time time.Time `json:"time"`
	metrics.Latency
}

// MemberLatency is one member's probe latency in the latest snapshot.
type MemberLatency struct {
	ID      health.ID       `json:"id"`
	Name    string          `json:"name"`
	Latency metrics.Latency `json:"latency"`
}

// LatencyResponse is the body of GET /api/v1/metrics/latency. Latencies are in
// nanoseconds.
type LatencyResponse struct {
	Cluster string          `json:"cluster"`
	Current metrics.Latency `json:"current"`
	Members []MemberLatency `json:"members"`
	History []LatencyPoint  `json:"history"`
}

func (s *Service) getLatency(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	snap, err := snapshot(q.cluster)
	if err != nil {
		return nil, err
	}
	resp := LatencyResponse{Cluster: q.cluster.name, Current: snap.Latency, Members: []MemberLatency{}, History: []LatencyPoint{}}
	for _, m := range snap.Members {
		resp.Members = append(resp.Members, MemberLatency{ID: health.ID(m.ID), Name: m.Name, Latency: m.Latency})
	}
	for _, h := range history(q) {
		resp.History = append(resp.History, LatencyPoint{Time: h.Time, Latency: h.Latency})
	}
	return resp, nil
}

// ClusterAlert is an alert with the cluster it belongs to.
type ClusterAlert struct {
	Cluster string `json:"cluster"`
	alert.Alert
}

// AlertsResponse is the body of GET /api/v1/alerts and /api/v1/alerts/history.
type AlertsResponse struct {
	Alerts []ClusterAlert `json:"alerts"`
}

// covers reports whether an alert belongs to the clusters a request covers: the named
// one, or all.
func (q query) covers(a alert.Alert) bool {
	return (q.all || a.Labels["cluster"] == q.cluster.name) && (q.severity == nil || a.Severity == *q.severity)
}

// getAlerts lists the pending and firing alerts, each with its status: the silences
// that mute it and the alerts that inhibit it.
func (s *Service) getAlerts(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	resp := AlertsResponse{Alerts: []ClusterAlert{}}
	for _, a := range s.alerts.Alerts() {
		if q.covers(a) && (q.state == "" || string(a.State) == q.state) {
			resp.Alerts = append(resp.Alerts, ClusterAlert{Cluster: a.Labels["cluster"], Alert: a})
		}
	}
	return resp, nil
}

// transitionTime is when an alert of the history changed to its state.
func transitionTime(a alert.Alert) time.Time {
	switch {
	case a.State == alert.Resolved:
		return a.EndsAt
	case a.State == alert.Firing:
		return a.StartsAt
	}
	return a.ActiveAt
}

// getAlertsHistory lists the transitions of every covered cluster merged by time,
// oldest first, the newest limit of them.
func (s *Service) getAlertsHistory(_ http.ResponseWriter, _ *http.Request, q query) (any, error) {
	resp := AlertsResponse{Alerts: []ClusterAlert{}}
	for _, a := range s.alerts.History() {
		if q.covers(a) && !transitionTime(a).Before(q.since) {
			resp.Alerts = append(resp.Alerts, ClusterAlert{Cluster: a.Labels["cluster"], Alert: a})
		}
	}
	slices.SortStableFunc(resp.Alerts, func(a, b ClusterAlert) int { return transitionTime(a.Alert).Compare(transitionTime(b.Alert)) })
	if len(resp.Alerts) > q.limit {
		resp.Alerts = resp.Alerts[len(resp.Alerts)-q.limit:]
	}
	return resp, nil
}

// NotificationsResponse is the body of GET /api/v1/alerts/notifications: the
// notification log, newest first.
type NotificationsResponse struct {
	Notifications []alert.NotificationRecord `json:"notifications"`
}

func (s *Service) getNotifications(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	recs, err := s.alerts.Notifications(r.Context(), alert.NotificationQuery{Receiver: q.receiver, Limit: q.limit})
	if err != nil {
		return nil, alertError(err)
	}
	if recs == nil {
		recs = []alert.NotificationRecord{}
	}
	return NotificationsResponse{Notifications: recs}, nil
}

// SilencesResponse is the body of GET /api/v1/silences: every silence, newest first.
type SilencesResponse struct {
	Silences []alert.Silence `json:"silences"`
}

func (s *Service) getSilences(_ http.ResponseWriter, r *http.Request, _ query) (any, error) {
	sils, err := s.alerts.Silences(r.Context())
	if err != nil {
		return nil, alertError(err)
	}
	if sils == nil {
		sils = []alert.Silence{}
	}
	return SilencesResponse{Silences: sils}, nil
}

// postSilence creates a silence, or replaces the unexpired one its "id" names. The body
// is Alertmanager's API v2 silence: matchers, startsAt, endsAt, createdBy, comment.
func (s *Service) postSilence(_ http.ResponseWriter, r *http.Request, _ query) (any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxSilenceBody))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "read body: %v", err)
	}
	sil, err := parseSilence(body)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	created, err := s.alerts.CreateSilence(r.Context(), sil)
	if err != nil {
		return nil, alertError(err)
	}
	s.opts.logger.Info("silence saved", zap.String("id", created.ID), zap.Stringer("matchers", matchersString(created.Matchers)),
		zap.Time("endsAt", created.EndsAt), zap.String("createdBy", created.CreatedBy))
	return created, nil
}

func (s *Service) getSilence(_ http.ResponseWriter, r *http.Request, _ query) (any, error) {
	sil, err := s.alerts.Silence(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, alertError(err)
	}
	return sil, nil
}

// deleteSilence expires a silence (it stays listed, as expired) and answers with it.
func (s *Service) deleteSilence(_ http.ResponseWriter, r *http.Request, _ query) (any, error) {
	id := r.PathValue("id")
	if err := s.alerts.ExpireSilence(r.Context(), id); err != nil {
		return nil, alertError(err)
	}
	s.opts.logger.Info("silence expired", zap.String("id", id))
	sil, err := s.alerts.Silence(r.Context(), id)
	if err != nil {
		return nil, alertError(err)
	}
	return sil, nil
}

// parseSilence reads a silence field by field, so that an error names the field at
// fault ("matchers[1]", "endsAt") and an unknown field is refused.
func parseSilence(body []byte) (alert.Silence, error) {
	var sil alert.Silence
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return sil, fmt.Errorf("malformed JSON body: %w", err)
	}
	for name, raw := range fields {
		var err error
		switch name {
		case "id":
			err = json.Unmarshal(raw, &sil.ID)
		case "createdBy":
			err = json.Unmarshal(raw, &sil.CreatedBy)
		case "comment":
			err = json.Unmarshal(raw, &sil.Comment)
		case "startsAt", "endsAt":
			t := &sil.StartsAt
			if name == "endsAt" {
				t = &sil.EndsAt
			}
			if err = json.Unmarshal(raw, t); err != nil {
				err = fmt.Errorf("want an RFC 3339 time such as %q", time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
			}
		case "matchers":
			var list []json.RawMessage
			if err = json.Unmarshal(raw, &list); err != nil {
				break
			}
			for i, m := range list {
				var mt alert.Matcher
				if err := json.Unmarshal(m, &mt); err != nil {
					return sil, fmt.Errorf("matchers[%d]: %v", i, err)
				}
				sil.Matchers = append(sil.Matchers, mt)
			}
		case "status", "updatedAt":
			err = errors.New("set by the server, not by a request")
		default:
			err = errors.New("unknown field (want matchers, startsAt, endsAt, createdBy, comment, and id to replace a silence)")
		}
		if err != nil {
			return sil, fmt.Errorf("%s: %v", name, err)
		}
	}
	return sil, nil
}

type matchersString alert.Matchers

func (m matchersString) String() string {
	parts := make([]string, len(m))
	for i, x := range m {
		parts[i] = x.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// alertError maps the alert manager's errors to answers: bad input (naming the field)
// 400, an unknown silence 404, a closed manager 503.
func alertError(err error) error {
	var fe *alert.FieldError
	switch {
	case errors.As(err, &fe):
		return errorf(http.StatusBadRequest, "%s: %s", fe.Field, fe.Reason)
	case errors.Is(err, alert.ErrInvalidArgument):
		return errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, alert.ErrSilenceNotFound):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, alert.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "service is shutting down")
	}
	return err
}

// benchmarkResponse is the body of a successful POST /api/v1/performance/benchmark.
type benchmarkResponse struct {
	Cluster string          `json:"cluster"`
	Result  *bench.Result   `json:"result"`
	SLO     bench.SLOReport `json:"slo"`
}

// BenchmarkRequest is the body of POST /api/v1/performance/benchmark: the fields of
// bench.Config ("workload" or its alias "type", "ops", "duration": "10s", "connections",
// "clients", "rate", ...) and optionally "slo" to check the result against instead of
// the service's.
type BenchmarkRequest struct {
	Config bench.Config
	SLO    *bench.SLO
}

// ParseBenchmarkRequest reads a request body; errors name the field at fault.
func ParseBenchmarkRequest(body []byte) (BenchmarkRequest, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return BenchmarkRequest{}, fmt.Errorf("malformed JSON body: %w", err)
	}
	var req BenchmarkRequest
	if raw, ok := fields["slo"]; ok {
		var slo bench.SLO
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slo); err != nil {
			return req, fmt.Errorf("slo: %w", err)
		}
		req.SLO = &slo
		delete(fields, "slo")
	}
	if raw, ok := fields["type"]; ok {
		if _, dup := fields["workload"]; dup {
			return req, errors.New(`give "workload" or "type", not both`)
		}
		fields["workload"] = raw
		delete(fields, "type")
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		return req, err
	}
	if err := json.Unmarshal(rest, &req.Config); err != nil {
		return req, err
	}
	if req.Config.Workload != "" {
		w, err := bench.ParseWorkload(string(req.Config.Workload))
		if err != nil {
			return req, err
		}
		req.Config.Workload = w
	}
	return req, req.Config.Validate()
}

func (s *Service) postBenchmark(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	lim := s.opts.benchmark
	if lim.Disabled {
		return nil, errorf(http.StatusForbidden, "benchmarks are disabled on this service")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBenchmarkBody))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "read body: %v", err)
	}
	req, err := ParseBenchmarkRequest(body)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	cfg := req.Config
	if cfg.Ops > lim.MaxOps {
		return nil, errorf(http.StatusBadRequest, "ops %d is over this service's limit of %d", cfg.Ops, lim.MaxOps)
	}
	if cfg.Duration > lim.MaxDuration {
		return nil, errorf(http.StatusBadRequest, "duration %v is over this service's limit of %v", cfg.Duration, lim.MaxDuration)
	}
	slo := lim.SLO
	if req.SLO != nil {
		slo = *req.SLO
	}

	if !s.benchMu.TryLock() {
		return nil, errorf(http.StatusConflict, "a benchmark is already running")
	}
	defer s.benchMu.Unlock()
	s.mu.Lock()
	if s.closed || isClosed(s.interrupted) {
		s.mu.Unlock()
		return nil, errorf(http.StatusServiceUnavailable, "service is shutting down")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithTimeout(r.Context(), lim.Timeout)
	defer cancel()
	go func() {
		select {
		case <-s.interrupted:
			cancel()
		case <-ctx.Done():
		}
	}()
	res, err := q.cluster.bench.Run(ctx, cfg)
	switch {
	case err == nil:
	case errors.Is(err, bench.ErrInvalidArgument):
		return nil, errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, bench.ErrQuota):
		return nil, errorf(http.StatusUnprocessableEntity, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, errorf(http.StatusGatewayTimeout, "benchmark did not finish within %v", lim.Timeout)
	case errors.Is(err, context.Canceled) && isClosed(s.interrupted):
		q.cluster.log.Info("benchmark cancelled: the service is shutting down")
		return nil, errorf(http.StatusServiceUnavailable, "benchmark cancelled: the service is shutting down")
	case errors.Is(err, context.Canceled):
		return nil, errorf(http.StatusServiceUnavailable, "benchmark cancelled")
	default:
		return nil, errorf(http.StatusBadGateway, "benchmark: %v", err)
	}
	resp := &benchmarkResponse{Cluster: q.cluster.name, Result: res, SLO: slo.Check(res)}
	q.cluster.mu.Lock()
	q.cluster.lastBench = resp
	q.cluster.mu.Unlock()
	s.saveBenchmark(resp)
	return resp, nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// BenchmarksResponse is the body of GET /api/v1/performance/benchmarks: the results kept
// in the store, newest first (empty without a store).
type BenchmarksResponse struct {
	Benchmarks []StoredBenchmark `json:"benchmarks"`
}

// StoredBenchmark is one stored result: when, and the answer the run gave.
type StoredBenchmark struct {
	ID     string          `json:"id"`
	Time   time.Time       `json:"time"`
	Result json.RawMessage `json:"result"`
}

func (s *Service) getBenchmarks(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	resp := BenchmarksResponse{Benchmarks: []StoredBenchmark{}}
	if s.opts.store == nil {
		return resp, nil
	}
	cluster := ""
	if !q.all {
		cluster = q.cluster.name
	}
	bs, err := s.opts.store.Benchmarks(r.Context(), store.BenchmarkQuery{Cluster: cluster, Limit: q.limit})
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		resp.Benchmarks = append(resp.Benchmarks, StoredBenchmark{ID: b.ID, Time: b.Time, Result: b.Data})
	}
	return resp, nil
}

// saveBenchmark keeps a result in the store, when there is one. A failure is logged: the
// caller has the result in the answer.
func (s *Service) saveBenchmark(resp *benchmarkResponse) {
	if s.opts.store == nil {
		return
	}
	data, err := json.Marshal(resp)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		now := time.Now()
		err = s.opts.store.PutBenchmark(ctx, store.Benchmark{ID: fmt.Sprintf("%s-%d", resp.Cluster, now.UnixNano()), Time: now,
			Cluster: resp.Cluster, Name: string(resp.Result.Workload), Data: data})
	}
	if err != nil {
		s.opts.logger.Warn("benchmark result not stored", zap.String("cluster", resp.Cluster), zap.Error(err))
	}
}
