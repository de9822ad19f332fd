package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// What the API serves, as Go: each method answers what one endpoint answers, from the
// same code, so a program that embeds a Service reads its state without HTTP. A name ""
// means the first cluster given to New, as a request that names none. Errors:
// ErrUnknownCluster for a name that is not monitored, ErrNoData before the first check
// or collection, ErrInvalidArgument for a bad query.

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
	Status        string          `json:"status"`
	UptimeSeconds float64         `json:"uptimeSeconds"`
	Clusters      []ClusterHealth `json:"clusters"`
	// Replica names this daemon and the active replica when several share a store (see
	// WithReplica); absent otherwise.
	Replica *ReplicaStatus `json:"replica,omitempty"`
	// Warnings lists unsafe settings (see WithWarnings).
	Warnings []string `json:"warnings,omitempty"`
}

// ReplicaStatus says which of several daemons on one store evaluates alerts and notifies.
type ReplicaStatus struct {
	// ID is this daemon's replica ID.
	ID string `json:"id"`
	// Active is true when this daemon is the one that notifies.
	Active bool `json:"active"`
	// ActiveID is the active replica's ID, "" when none is known.
	ActiveID string `json:"activeID"`
}

// Health returns what GET /health answers.
func (s *Service) Health() HealthResponse {
	resp := HealthResponse{Status: "ok", UptimeSeconds: time.Since(s.started).Truncate(time.Millisecond).Seconds(),
		Clusters: []ClusterHealth{}, Warnings: s.opts.warnings}
	if s.opts.replica != nil {
		r := s.opts.replica()
		resp.Replica = &r
	}
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
	return resp
}

// ClustersResponse is the body of GET /api/v1/clusters.
type ClustersResponse struct {
	// Clusters are the names, in the order given to New.
	Clusters []string `json:"clusters"`
}

// lookup returns the named cluster ("" for the first).
func (s *Service) lookup(name string) (*clusterState, error) {
	c, ok := s.cluster(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q (have %s)", ErrUnknownCluster, name, strings.Join(s.Clusters(), ", "))
	}
	return c, nil
}

// checked returns the cluster's latest health report, or ErrNoData before the first
// successful check.
func (s *Service) checked(name string) (*clusterState, healthView, error) {
	c, err := s.lookup(name)
	if err != nil {
		return nil, healthView{}, err
	}
	h := c.health()
	if h.report == nil {
		msg := "no health check has completed yet"
		if h.err != nil {
			msg += ": " + h.err.Error()
		}
		return c, h, fmt.Errorf("%w: cluster %s: %s", ErrNoData, c.name, msg)
	}
	return c, h, nil
}

// StatusResponse is the body of GET /api/v1/clusters/{name}/status.
type StatusResponse struct {
	Cluster   string        `json:"cluster"`
	CheckedAt time.Time     `json:"checkedAt"`
	Healthy   bool          `json:"healthy"`
	ClusterID health.ID     `json:"clusterID"`
	Leader    health.Leader `json:"leader"`
	Quorum    Quorum        `json:"quorum"`
	// Members counts the membership list, Reachable those that answered.
	Members        int               `json:"members"`
	Reachable      int               `json:"reachable"`
	SplitBrain     health.SplitBrain `json:"splitBrain"`
	Partition      health.Partition  `json:"partition"`
	Alarms         []health.Alarm    `json:"alarms"`
	RevisionSpread int64             `json:"revisionSpread"`
	// ApplyRate is raft entries per second committed since the previous check.
	ApplyRate    float64 `json:"applyRate"`
	ActiveAlerts int     `json:"activeAlerts"`
	// Error is why the latest check failed, when it did: the rest is from the last one
	// that succeeded.
	Error string `json:"error,omitempty"`
	// Versions maps each reachable member's ID to its etcd version.
	Versions             map[health.ID]string `json:"versions"`
	CheckDurationSeconds float64              `json:"checkDurationSeconds"`
	LastLeaderChange     *health.LeaderChange `json:"lastLeaderChange,omitempty"`
}

// ClusterStatus returns the cluster's status as of its latest health check: what GET
// /api/v1/clusters/{name}/status answers.
func (s *Service) ClusterStatus(name string) (*StatusResponse, error) {
	c, h, err := s.checked(name)
	if err != nil {
		return nil, err
	}
	r := h.report
	resp := &StatusResponse{
		Cluster: c.name, CheckedAt: h.at, Healthy: r.Healthy, ClusterID: r.ClusterID,
		Leader: r.Leader, Quorum: quorumOf(r.Quorum), Members: len(r.Members), SplitBrain: r.SplitBrain, Partition: r.Partition,
		Alarms: r.Alarms, RevisionSpread: r.RevisionSpread, ApplyRate: r.ApplyRate, ActiveAlerts: len(c.active()),
		Versions: map[health.ID]string{}, CheckDurationSeconds: seconds(r.Duration),
	}
	if resp.Alarms == nil {
		resp.Alarms = []health.Alarm{}
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
		resp.LastLeaderChange = &lc
	}
	return resp, nil
}

// MembersResponse is the body of GET /api/v1/clusters/{name}/members.
type MembersResponse struct {
	Cluster   string    `json:"cluster"`
	CheckedAt time.Time `json:"checkedAt"`
	Members   []Member  `json:"members"`
}

// Members returns the cluster's members as of its latest health check.
func (s *Service) Members(name string) (*MembersResponse, error) {
	c, h, err := s.checked(name)
	if err != nil {
		return nil, err
	}
	return &MembersResponse{Cluster: c.name, CheckedAt: h.at, Members: membersOf(h.report)}, nil
}

// LeaderResponse is the body of GET /api/v1/clusters/{name}/leader. Member is absent
// when there is no leader.
type LeaderResponse struct {
	Cluster   string        `json:"cluster"`
	CheckedAt time.Time     `json:"checkedAt"`
	Leader    health.Leader `json:"leader"`
	Member    *Member       `json:"member,omitempty"`
	// Changes is the leader change history, oldest first.
	Changes []health.LeaderChange `json:"changes"`
}

// Leader returns the cluster's leader and leader change history as of its latest
// health check.
func (s *Service) Leader(name string) (*LeaderResponse, error) {
	c, h, err := s.checked(name)
	if err != nil {
		return nil, err
	}
	r := h.report
	resp := &LeaderResponse{Cluster: c.name, CheckedAt: h.at, Leader: r.Leader, Changes: r.LeaderHistory}
	if resp.Changes == nil {
		resp.Changes = []health.LeaderChange{}
	}
	if r.Leader.ID != 0 {
		for _, m := range membersOf(r) {
			if m.ID == r.Leader.ID {
				resp.Member = &m
			}
		}
	}
	return resp, nil
}

// HistoryQuery selects a time range of a history, oldest first.
type HistoryQuery struct {
	// Since (inclusive) and Until (exclusive) bound the range; zero does not bound.
	Since, Until time.Time
	// Step, when positive, thins the history to at most one entry per Step (the latest
	// of each step) — or, from a store that keeps rollups, to the rollup of each step.
	// At most store.MaxHistoryStep (366 days).
	Step time.Duration
	// Limit caps the entries, keeping the newest. 0 means 100; at most 1000.
	Limit int
}

func (q HistoryQuery) normalize() (HistoryQuery, error) {
	switch {
	case q.Limit == 0:
		q.Limit = defaultHistoryLimit
	case q.Limit < 0 || q.Limit > maxHistoryLimit:
		return q, fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalidArgument, q.Limit, maxHistoryLimit)
	}
	if q.Step < 0 || q.Step > store.MaxHistoryStep {
		return q, fmt.Errorf("%w: step %v: want 0 to %v", ErrInvalidArgument, q.Step, store.MaxHistoryStep)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return q, fmt.Errorf("%w: until %s is not after since %s", ErrInvalidArgument, q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	return q, nil
}

func (q HistoryQuery) in(t time.Time) bool {
	return !t.Before(q.Since) && (q.Until.IsZero() || t.Before(q.Until))
}

// newestInMemory reports whether q asks for the newest records only, no more than the n
// in memory: memory has each record before the store does, so it answers those without
// a read of the store.
func newestInMemory(q HistoryQuery, n int) bool {
	return q.Since.IsZero() && q.Until.IsZero() && q.Step == 0 && q.Limit <= n
}

// selectHistory keeps the entries of all (oldest first) that q selects.
func selectHistory[T any](all []T, at func(T) time.Time, q HistoryQuery) []T {
	out := make([]T, 0, min(len(all), q.Limit))
	for i, e := range all {
		t := at(e)
		if !q.in(t) {
			continue
		}
		// With a step, keep the last entry of each step.
		if q.Step > 0 && i+1 < len(all) && q.in(at(all[i+1])) && at(all[i+1]).Truncate(q.Step).Equal(t.Truncate(q.Step)) {
			continue
		}
		out = append(out, e)
	}
	if len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out
}

// HealthHistoryResponse is the body of GET /api/v1/clusters/{name}/history.
type HealthHistoryResponse struct {
	Cluster string          `json:"cluster"`
	Checks  []HealthSummary `json:"checks"`
}

// HealthHistory returns the cluster's health checks that q selects, oldest first: from
// the store when it keeps history, except the newest records when memory holds as many;
// else from memory.
func (s *Service) HealthHistory(ctx context.Context, name string, q HistoryQuery) (*HealthHistoryResponse, error) {
	c, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if q, err = q.normalize(); err != nil {
		return nil, err
	}
	// Only a request memory answers copies memory's entries: a copy of them all (up to
	// the history size, 1,000 by default: 80 KB) for each request the store
	// answers was garbage at hundreds of requests a second.
	c.mu.RLock()
	n := len(c.history)
	c.mu.RUnlock()
	if hs, ok := s.historyStore(); ok && !newestInMemory(q, n) {
		checks, err := hs.healthHistory(ctx, c.name, q)
		if err == nil {
			return &HealthHistoryResponse{Cluster: c.name, Checks: checks}, nil
		}
		c.log.Warn("health history from the store failed; answering from memory")
	}
	return &HealthHistoryResponse{Cluster: c.name, Checks: selectHistory(c.healthHistory(), func(h HealthSummary) time.Time { return h.Time }, q)}, nil
}

// MetricsResponse is the body of GET /api/v1/clusters/{name}/metrics/current.
type MetricsResponse struct {
	Cluster  string           `json:"cluster"`
	Snapshot *MetricsSnapshot `json:"snapshot"`
}

// CurrentMetrics returns the cluster's latest metric snapshot.
func (s *Service) CurrentMetrics(name string) (*MetricsResponse, error) {
	c, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	snap, err := latestSnapshot(c)
	if err != nil {
		return nil, err
	}
	return &MetricsResponse{Cluster: c.name, Snapshot: snapshotOf(snap)}, nil
}

func latestSnapshot(c *clusterState) (*metrics.Snapshot, error) {
	snap, err := c.metrics()
	if snap == nil {
		msg := "no metrics have been collected yet"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, fmt.Errorf("%w: cluster %s: %s", ErrNoData, c.name, msg)
	}
	return snap, nil
}

// MetricsHistoryResponse is the body of GET /api/v1/clusters/{name}/metrics/history
// (oldest first).
type MetricsHistoryResponse struct {
	Cluster   string             `json:"cluster"`
	Snapshots []*MetricsSnapshot `json:"snapshots"`
}

// rawHistory returns the cluster's snapshots that q selects, oldest first.
func (s *Service) rawHistory(ctx context.Context, c *clusterState, q HistoryQuery) []point {
	mem := c.collector.History()
	if hs, ok := s.historyStore(); ok && !newestInMemory(q, len(mem)) {
		ps, err := hs.metricsHistory(ctx, c.name, q)
		if err == nil {
			return ps
		}
		c.log.Warn("metric history from the store failed; answering from memory")
	}
	return points(selectHistory(mem, func(s *metrics.Snapshot) time.Time { return s.Time }, q))
}

// MetricsHistory returns the cluster's metric snapshots that q selects, oldest first:
// from the store when it keeps history, else from memory.
func (s *Service) MetricsHistory(ctx context.Context, name string, q HistoryQuery) (*MetricsHistoryResponse, error) {
	c, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if q, err = q.normalize(); err != nil {
		return nil, err
	}
	raw := s.rawHistory(ctx, c, q)
	resp := &MetricsHistoryResponse{Cluster: c.name, Snapshots: make([]*MetricsSnapshot, 0, len(raw))}
	for _, p := range raw {
		resp.Snapshots = append(resp.Snapshots, p.wire())
	}
	return resp, nil
}

// LatencyPoint is the cluster-wide probe latency of one snapshot.
type LatencyPoint struct {
	Time    time.Time `json:"time"`
	Latency Latency   `json:"latency"`
}

// MemberLatency is one member's probe latency in the latest snapshot.
type MemberLatency struct {
	ID      health.ID `json:"id"`
	Name    string    `json:"name"`
	Latency Latency   `json:"latency"`
}

// LatencyResponse is the body of GET /api/v1/clusters/{name}/metrics/latency.
type LatencyResponse struct {
	Cluster string          `json:"cluster"`
	Current Latency         `json:"current"`
	Members []MemberLatency `json:"members"`
	History []LatencyPoint  `json:"history"`
}

// LatencyHistory returns the cluster's probe latency: now, by member, and over the
// history q selects.
func (s *Service) LatencyHistory(ctx context.Context, name string, q HistoryQuery) (*LatencyResponse, error) {
	c, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if q, err = q.normalize(); err != nil {
		return nil, err
	}
	snap, err := latestSnapshot(c)
	if err != nil {
		return nil, err
	}
	resp := &LatencyResponse{Cluster: c.name, Current: latencyOf(snap.Latency), Members: []MemberLatency{}, History: []LatencyPoint{}}
	for _, m := range snap.Members {
		resp.Members = append(resp.Members, MemberLatency{ID: health.ID(m.ID), Name: m.Name, Latency: latencyOf(m.Latency)})
	}
	if s.opts.store != nil {
		ps, err := storedLatency(ctx, s.opts.store, c.name, q)
		if err == nil {
			resp.History = ps
			return resp, nil
		}
		c.log.Warn("latency history from the store failed; answering from memory", zap.Error(err))
	}
	for _, p := range points(selectHistory(c.collector.History(), func(s *metrics.Snapshot) time.Time { return s.Time }, q)) {
		resp.History = append(resp.History, LatencyPoint{Time: p.snap.Time, Latency: latencyOf(p.snap.Latency)})
	}
	return resp, nil
}

// storedLatency reads the cluster's probe latency history from the store, as the
// metrics history has it (a rollup's latency from its values), decoding of each
// stored snapshot only its latency: decoding whole snapshots (every member's
// histograms) took most of the endpoint's time.
func storedLatency(ctx context.Context, st store.Store, cluster string, q HistoryQuery) ([]LatencyPoint, error) {
	recs, err := st.MetricSnapshots(ctx, storeQuery(cluster, q))
	if err != nil {
		return nil, err
	}
	out := make([]LatencyPoint, 0, len(recs))
	for _, r := range recs {
		if r.Member != "" {
			continue // per-member records are not ours
		}
		var snap struct {
			Latency *metrics.Latency `json:"latency"`
		}
		if len(r.Data) == 0 || json.Unmarshal(r.Data, &snap) != nil || snap.Latency == nil {
			d := func(name string) time.Duration { return time.Duration(r.Values[name] * float64(time.Second)) }
			snap.Latency = &metrics.Latency{Samples: r.Samples, P50: d(valP50), P95: d(valP95), P99: d(valP99), Max: d(valMax)}
		}
		out = append(out, LatencyPoint{Time: r.Time, Latency: latencyOf(*snap.Latency)})
	}
	return out, nil
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

// AlertQuery selects alerts.
type AlertQuery struct {
	// Cluster selects one cluster's alerts; "" selects every cluster's.
	Cluster string
	// Severity, when not nil, selects alerts of that severity.
	Severity *alert.Severity
	// State selects pending or firing alerts (ActiveAlerts only); "" selects both.
	State alert.State
	// Since selects history records of transitions at or after it (AlertHistory only).
	Since time.Time
	// Limit caps the history, keeping the newest (AlertHistory only). 0 means 100.
	Limit int
}

func (q AlertQuery) covers(a alert.Alert) bool {
	return (q.Cluster == "" || a.Labels["cluster"] == q.Cluster) && (q.Severity == nil || a.Severity == *q.Severity)
}

func (s *Service) checkAlertQuery(q AlertQuery) error {
	if q.Cluster != "" {
		if _, err := s.lookup(q.Cluster); err != nil {
			return err
		}
	}
	if q.State != "" && q.State != alert.Pending && q.State != alert.Firing {
		return fmt.Errorf("%w: state %q: want pending or firing", ErrInvalidArgument, q.State)
	}
	if q.Limit < 0 || q.Limit > maxHistoryLimit {
		return fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalidArgument, q.Limit, maxHistoryLimit)
	}
	return nil
}

// ActiveAlerts returns the pending and firing alerts q selects, each with its status
// (the silences that mute it and the alerts that inhibit it).
func (s *Service) ActiveAlerts(q AlertQuery) ([]ClusterAlert, error) {
	if err := s.checkAlertQuery(q); err != nil {
		return nil, err
	}
	m, err := s.readManager(context.Background())
	if err != nil {
		return nil, err
	}
	out := []ClusterAlert{}
	for _, a := range m.Alerts() {
		if q.covers(a) && (q.State == "" || a.State == q.State) {
			out = append(out, ClusterAlert{Cluster: a.Labels["cluster"], Alert: a})
		}
	}
	return out, nil
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

// AlertHistory returns the alert transitions q selects, merged across clusters by time,
// oldest first, the newest q.Limit of them: from the store when it records them (a
// store.AlertHistorian: every replica on one store, and a daemon after a restart,
// answer alike), else from the alert engine's memory.
func (s *Service) AlertHistory(q AlertQuery) ([]ClusterAlert, error) {
	return s.alertHistory(context.Background(), q)
}

func (s *Service) alertHistory(ctx context.Context, q AlertQuery) ([]ClusterAlert, error) {
	if err := s.checkAlertQuery(q); err != nil {
		return nil, err
	}
	if q.Limit == 0 {
		q.Limit = defaultHistoryLimit
	}
	if h, ok := s.opts.store.(store.AlertHistorian); ok {
		out, err := storedAlertHistory(ctx, h, q)
		if err == nil {
			return out, nil
		}
		s.opts.logger.Warn("alert history from the store failed; answering from memory", zap.Error(err))
	}
	m, err := s.readManager(ctx)
	if err != nil {
		return nil, err
	}
	out := []ClusterAlert{}
	for _, a := range m.History() {
		if q.covers(a) && !transitionTime(a).Before(q.Since) {
			out = append(out, ClusterAlert{Cluster: a.Labels["cluster"], Alert: a})
		}
	}
	slices.SortStableFunc(out, func(a, b ClusterAlert) int { return transitionTime(a.Alert).Compare(transitionTime(b.Alert)) })
	if len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// storedAlertHistory reads the transitions q selects from the store. A severity is not
// a column of the store's history: with one, the newest transitions are read in
// windows four times larger each time until the limit is met or the (bounded) history
// is read whole, and filtered here.
func storedAlertHistory(ctx context.Context, h store.AlertHistorian, q AlertQuery) ([]ClusterAlert, error) {
	sq := store.AlertHistoryQuery{Cluster: q.Cluster, Since: q.Since, Limit: q.Limit}
	var out []ClusterAlert
	for {
		trs, err := h.AlertHistory(ctx, sq)
		if err != nil {
			return nil, err
		}
		out = []ClusterAlert{}
		for _, tr := range trs {
			a, ok := transitionAlert(tr)
			if ok && q.covers(a) && !transitionTime(a).Before(q.Since) {
				out = append(out, ClusterAlert{Cluster: a.Labels["cluster"], Alert: a})
			}
		}
		if len(out) >= q.Limit || len(trs) < sq.Limit || sq.Limit >= store.DefaultMaxNotifications {
			break
		}
		sq.Limit = min(4*sq.Limit, store.DefaultMaxNotifications)
	}
	slices.SortStableFunc(out, func(a, b ClusterAlert) int { return transitionTime(a.Alert).Compare(transitionTime(b.Alert)) })
	if len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// transitionAlert is the alert of a stored transition, as the engine's history has it:
// the engine's record (its store Data, {"alert": ...}) in the transition's state.
func transitionAlert(tr store.AlertTransition) (alert.Alert, bool) {
	var rec struct {
		Alert alert.Alert `json:"alert"`
	}
	if len(tr.Data) == 0 || json.Unmarshal(tr.Data, &rec) != nil || rec.Alert.Name == "" {
		return alert.Alert{}, false
	}
	a := rec.Alert
	if a.Fingerprint == "" {
		a.Fingerprint = tr.Fingerprint
	}
	switch tr.State {
	case store.StateFiring:
		a.State, a.EndsAt = alert.Firing, time.Time{}
		if a.StartsAt.IsZero() {
			a.StartsAt = tr.Time
		}
	case store.StateResolved:
		a.State = alert.Resolved
		if a.EndsAt.IsZero() {
			a.EndsAt = tr.Time // deleted while firing: resolved then
		}
	default:
		return alert.Alert{}, false
	}
	return a, true
}

// BenchmarksResponse is the body of GET /api/v1/performance/benchmarks: the results kept
// in the store, newest first (empty without a store).
type BenchmarksResponse struct {
	Benchmarks []StoredBenchmark `json:"benchmarks"`
}

// StoredBenchmark is one stored result: when, and the answer the run gave (a
// BenchmarkResponse).
type StoredBenchmark struct {
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Cluster string          `json:"cluster"`
	Result  json.RawMessage `json:"result" openapi:"BenchmarkResponse"`
}

// Benchmarks returns the stored benchmark results of a cluster ("" for every cluster),
// newest first, at most limit (0 means 100). Without a store there are none.
func (s *Service) Benchmarks(ctx context.Context, cluster string, limit int) ([]StoredBenchmark, error) {
	if cluster != "" {
		if _, err := s.lookup(cluster); err != nil {
			return nil, err
		}
	}
	if limit < 0 || limit > maxHistoryLimit {
		return nil, fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalidArgument, limit, maxHistoryLimit)
	}
	out := []StoredBenchmark{}
	if s.opts.store == nil {
		return out, nil
	}
	bs, err := s.opts.store.Benchmarks(ctx, store.BenchmarkQuery{Cluster: cluster, Limit: limit})
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		out = append(out, StoredBenchmark{ID: b.ID, Time: b.Time, Cluster: b.Cluster, Result: b.Data})
	}
	return out, nil
}
