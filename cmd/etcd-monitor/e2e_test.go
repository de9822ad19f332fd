package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// The receivers of the end-to-end tests are httptest servers that check the shape of
// what they get against the services' published formats and record it.

// notice is one notification a receiver accepted.
type notice struct {
	at     time.Time
	status string   // firing or resolved (for PagerDuty: trigger or resolve)
	names  []string // alert names it carries (firing ones first)
	crit   bool     // it carries a critical alert
}

type receiverLog struct {
	mu       sync.Mutex
	notices  []notice
	bodies   []string
	problems []string
}

func (l *receiverLog) add(n notice) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notices = append(l.notices, n)
}

func (l *receiverLog) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func (l *receiverLog) all() ([]notice, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.notices), slices.Clone(l.problems)
}

func (l *receiverLog) count(status string) int {
	ns, _ := l.all()
	n := 0
	for _, x := range ns {
		if x.status == status {
			n++
		}
	}
	return n
}

// slackServer accepts Slack incoming-webhook payloads: {"text", "blocks": [{"type", ...}]}.
func slackServer(t *testing.T) (*httptest.Server, *receiverLog) {
	log := &receiverLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Channel string `json:"channel"`
			Text    string `json:"text"`
			Blocks  []struct {
				Type string          `json:"type"`
				Text json.RawMessage `json:"text"`
			} `json:"blocks"`
		}
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/services/T000/B000/SECRET" {
			log.problem("slack: %s %s", r.Method, r.URL.Path)
		}
		if err := json.Unmarshal(body, &m); err != nil || m.Text == "" || len(m.Blocks) == 0 {
			log.problem("slack: bad payload (%v): %s", err, body)
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		for _, b := range m.Blocks {
			if !slices.Contains([]string{"header", "section", "context", "divider"}, b.Type) {
				log.problem("slack: block type %q", b.Type)
			}
		}
		status := "firing"
		if strings.Contains(strings.ToLower(m.Text), "resolved") && !strings.Contains(strings.ToLower(m.Text), "firing") {
			status = "resolved"
		}
		log.add(notice{at: time.Now(), status: status, names: alertNames(string(body)), crit: strings.Contains(string(body), "critical")})
		log.mu.Lock()
		log.bodies = append(log.bodies, string(body))
		log.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, log
}

// routingKey is the PagerDuty integration key of the tests.
const routingKey = "0123456789abcdef0123456789abcdef"

// pagerDutyServer accepts Events API v2 events.
func pagerDutyServer(t *testing.T) (*httptest.Server, *receiverLog) {
	log := &receiverLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e struct {
			RoutingKey  string `json:"routing_key"`
			EventAction string `json:"event_action"`
			DedupKey    string `json:"dedup_key"`
			Payload     *struct {
				Summary   string `json:"summary"`
				Source    string `json:"source"`
				Severity  string `json:"severity"`
				Timestamp string `json:"timestamp"`
			} `json:"payload"`
		}
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" {
			log.problem("pagerduty: %s %s", r.Method, r.URL.Path)
		}
		err := json.Unmarshal(body, &e)
		switch {
		case err != nil, e.RoutingKey != routingKey, e.DedupKey == "", len(e.DedupKey) > 255:
			log.problem("pagerduty: bad event (%v): %s", err, body)
			http.Error(w, `{"status":"invalid event"}`, http.StatusBadRequest)
			return
		case e.EventAction == "trigger":
			p := e.Payload
			if p == nil || p.Summary == "" || len(p.Summary) > 1024 || p.Source == "" ||
				!slices.Contains([]string{"critical", "error", "warning", "info"}, p.Severity) {
				log.problem("pagerduty: bad trigger payload: %s", body)
			}
			if p != nil && p.Timestamp != "" {
				if _, err := time.Parse(time.RFC3339, p.Timestamp); err != nil {
					log.problem("pagerduty: timestamp %q", p.Timestamp)
				}
			}
		case e.EventAction == "resolve", e.EventAction == "acknowledge":
		default:
			log.problem("pagerduty: event_action %q", e.EventAction)
		}
		log.add(notice{at: time.Now(), status: e.EventAction, names: alertNames(string(body)),
			crit: e.Payload != nil && e.Payload.Severity == "critical"})
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(w, `{"status":"success","message":"Event processed","dedup_key":%q}`, e.DedupKey)
	}))
	t.Cleanup(srv.Close)
	return srv, log
}

// alertmanagerServer accepts POST /api/v2/alerts: a list of postableAlert (labels
// required; annotations, startsAt, endsAt, generatorURL optional; nothing else).
func alertmanagerServer(t *testing.T) (*httptest.Server, *receiverLog) {
	log := &receiverLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" {
			log.problem("alertmanager: %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		var raw []map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil || len(raw) == 0 {
			log.problem("alertmanager: not a list of alerts (%v): %s", err, body)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		n := notice{at: time.Now(), status: "resolved"}
		for _, a := range raw {
			for k := range a {
				if !slices.Contains([]string{"labels", "annotations", "startsAt", "endsAt", "generatorURL"}, k) {
					log.problem("alertmanager: unknown field %q", k)
				}
			}
			var labels, annotations map[string]string
			if err := json.Unmarshal(a["labels"], &labels); err != nil || labels["alertname"] == "" {
				log.problem("alertmanager: labels: %v: %s", err, a["labels"])
			}
			if v, ok := a["annotations"]; ok {
				if err := json.Unmarshal(v, &annotations); err != nil {
					log.problem("alertmanager: annotations: %v", err)
				}
			}
			var ends time.Time
			for _, k := range []string{"startsAt", "endsAt"} {
				if v, ok := a[k]; ok {
					var ts time.Time
					if err := json.Unmarshal(v, &ts); err != nil {
						log.problem("alertmanager: %s: %v", k, err)
					}
					if k == "endsAt" {
						ends = ts
					}
				}
			}
			if ends.IsZero() || ends.After(time.Now()) {
				n.status = "firing"
			}
			n.names = append(n.names, labels["alertname"])
			n.crit = n.crit || labels["severity"] == "critical"
		}
		log.add(n)
	}))
	t.Cleanup(srv.Close)
	return srv, log
}

// alertNames picks the etcd alert names out of a payload.
func alertNames(body string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(body, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		if strings.HasPrefix(f, "Etcd") && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// runningDaemon is a daemon started in-process that a test stops when it chooses.
type runningDaemon struct {
	url  string
	logs *syncBuffer
	stop func() error
}

func startDaemon(t testing.TB, args ...string) *runningDaemon {
	t.Helper()
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--api-host=127.0.0.1", "--api-port=0"}, args...), &stdout, &stderr)
	}()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("daemon did not stop")
			}
			http.DefaultClient.CloseIdleConnections()
		})
		return stopErr
	}
	t.Cleanup(func() { assert.NoError(t, stop(), "graceful shutdown") })
	select {
	case err := <-done:
		t.Fatalf("daemon exited at startup: %v\n%s", err, stderr.String())
	default:
	}
	return &runningDaemon{url: "http://" + address(t, &stderr), logs: &stderr, stop: stop}
}

// e2eConfig is the daemon's configuration for a 3-member cluster and the three
// receivers: critical alerts page (PagerDuty) and go to Alertmanager, critical and
// warning alerts go to Slack. Rule timings and group_wait are the defaults (EtcdNoLeader's
// for is what absorbs a leader election; EtcdMembersDown's a member's restart); the
// check timeout is long because the in-process cluster, under -race on a busy machine,
// answers a linearizable read in up to 3 s, which a monitor must not take for members
// being down (the outage alerts notify 2 s after the check that sees them), and the
// dial timeout, which bounds the daemon's connection test at startup (a serializable
// member list), is longer than that for the same reason; the health interval and
// group_interval are short so that the tests take seconds and resolves come quickly.
func e2eConfig(t *testing.T, c *etcdtest.Cluster, slack, pd, am string, extra string) string {
	var eps, members []string
	for _, m := range c.Members {
		eps = append(eps, m.GRPCURL)
		members = append(members, fmt.Sprintf("%s: %q", m.Name, m.GRPCURL))
	}
	return writeFile(t, "e2e.yaml", fmt.Sprintf(`
etcd:
  name: prod
  endpoints: [%s]
  dial_timeout: 10s
  member_endpoints: {%s}
monitor:
  health_check_interval: %s
  metrics_interval: %s
  check_timeout: 5s
  latency_samples: 2
api:
  request_log: false
  auth:
    tokens:
      - {name: ops, token: %s, role: admin}
alerts:
  console: false
  route:
    receiver: slack
    group_interval: 3s
    routes:
      - matchers: ['severity="critical"']
        receiver: pagerduty
        continue: true
      - matchers: ['severity="critical"']
        receiver: am
        continue: true
      - matchers: ['severity=~"critical|warning"']
        receiver: slack
  receivers:
    - {name: slack, type: slack, url: "%s/services/T000/B000/SECRET"}
    - {name: pagerduty, type: pagerduty, routing_key: %s, url: "%s/v2/enqueue"}
    - {name: am, type: alertmanager, url: %q}
%s`, strings.Join(quoteAll(eps), ", "), strings.Join(members, ", "), e2eInterval, e2eInterval, adminToken,
		slack, routingKey, pd, am, extra))
}

// The health interval and the group_wait of the longest-waiting group (the default for
// alerts other than the outage ones) of the end-to-end tests.
const (
	e2eInterval  = time.Second
	e2eGroupWait = alert.DefaultGroupWait
)

// notifyBound is what the issue asks of a page for a lost quorum: one health interval
// plus 10 s. The tests wait three times that; BenchmarkTimeToNotify measures it.
const notifyBound = e2eInterval + 10*time.Second

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

type statusView struct {
	Healthy   bool `json:"healthy"`
	Reachable int  `json:"reachable"`
	Quorum    struct {
		HasQuorum bool `json:"hasQuorum"`
	} `json:"quorum"`
}

// waitStatus waits until the daemon's view of the cluster satisfies ok. Its waits are for
// the cluster to settle, not bounds under test: on a busy machine an in-process cluster
// under -race takes many seconds to elect a leader.
func waitStatus(t *testing.T, d *runningDaemon, within time.Duration, ok func(statusView) bool, msg string) {
	t.Helper()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		st, err := clusterStatus(d)
		if assert.NoError(ct, err) {
			assert.True(ct, ok(st), "%s: %+v", msg, st)
		}
	}, within, 50*time.Millisecond, msg)
}

// clusterStatus reads the daemon's /api/v1/cluster/status.
func clusterStatus(d *runningDaemon) (statusView, error) {
	var st statusView
	return st, getJSON(d.url+"/api/v1/cluster/status", adminToken, &st)
}

// getJSON GETs url and decodes a 200 answer into out. A failure is returned, not
// asserted, so that a condition polled by Eventually may fail and then succeed.
func getJSON(url, token string, out any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type e2eReceivers struct {
	slack, pd, am *receiverLog
	urls          [3]string
}

func newReceivers(t *testing.T) *e2eReceivers {
	s, sl := slackServer(t)
	p, pl := pagerDutyServer(t)
	a, al := alertmanagerServer(t)
	return &e2eReceivers{slack: sl, pd: pl, am: al, urls: [3]string{s.URL, p.URL, a.URL}}
}

func (r *e2eReceivers) slackBodies() []string {
	r.slack.mu.Lock()
	defer r.slack.mu.Unlock()
	return slices.Clone(r.slack.bodies)
}

func (r *e2eReceivers) noProblems(t *testing.T) {
	t.Helper()
	for name, l := range map[string]*receiverLog{"slack": r.slack, "pagerduty": r.pd, "alertmanager": r.am} {
		_, problems := l.all()
		assert.Empty(t, problems, "%s saw payloads that do not follow its format", name)
	}
}

func (r *e2eReceivers) counts() string {
	s, _ := r.slack.all()
	p, _ := r.pd.all()
	a, _ := r.am.all()
	return fmt.Sprintf("slack %v, pagerduty %v, alertmanager %v", s, p, a)
}

// The Show, on one 3-member cluster: a rolling restart pages nobody; losing two
// members sends exactly one grouped critical notification to each routed receiver within
// a health interval plus 10 s; restarting the daemon mid-incident sends no duplicate; a
// condition that clears while the daemon is down is resolved after it restarts.
func TestEndToEndIncident(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	c := etcdtest.NewCluster(t, 3)
	rec := newReceivers(t)
	dataDir := t.TempDir()
	cfg := e2eConfig(t, c, rec.urls[0], rec.urls[1], rec.urls[2], "")
	args := []string{"--config=" + cfg, "--data-dir=" + dataDir}
	d := startDaemon(t, args...)
	healthy := func(st statusView) bool { return st.Healthy && st.Reachable == 3 }
	waitStatus(t, d, time.Minute, healthy, "healthy at start")

	// Rolling restart: each member down 5 s (or until the daemon saw it down, if
	// later), quorum kept throughout.
	for i := range c.Members {
		c.StopMember(i)
		downSince := time.Now()
		waitStatus(t, d, time.Minute, func(st statusView) bool { return st.Reachable == 2 && st.Quorum.HasQuorum }, "member down")
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.GreaterOrEqual(ct, time.Since(downSince), 5*time.Second)
		}, 10*time.Second, 100*time.Millisecond)
		c.RestartMember(i)
		waitStatus(t, d, time.Minute, healthy, "member back")
	}
	assert.Zero(t, rec.slack.count("firing")+rec.pd.count("trigger")+rec.am.count("firing"),
		"a rolling restart notifies nobody: %s", rec.counts())

	// Quorum lost: two of three members stop.
	c.StopMember(0)
	c.StopMember(1)
	lost := time.Now()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 1, rec.pd.count("trigger"), "pagerduty")
		assert.Equal(ct, 1, rec.am.count("firing"), "alertmanager")
		assert.Equal(ct, 1, rec.slack.count("firing"), "slack")
	}, 3*notifyBound, 50*time.Millisecond, "one notification per receiver: %s", rec.counts())
	for _, l := range []*receiverLog{rec.pd, rec.am, rec.slack} {
		ns, _ := l.all()
		assert.True(t, ns[0].crit, "critical: %+v", ns[0])
		t.Logf("notified %v after quorum loss: %v", ns[0].at.Sub(lost).Round(10*time.Millisecond), ns[0].names)
	}

	// The daemon restarts mid-incident: the incident is known, nothing is sent twice.
	require.NoError(t, d.stop())
	d = startDaemon(t, args...)
	waitStatus(t, d, time.Minute, func(st statusView) bool { return !st.Quorum.HasQuorum }, "quorum lost seen after restart")
	var alerts struct {
		Alerts []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"alerts"`
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.NoError(ct, getJSON(d.url+"/api/v1/alerts?state=firing", adminToken, &alerts))
		assert.NotEmpty(ct, alerts.Alerts, "the incident fires after the restart")
	}, 20*time.Second, 50*time.Millisecond)
	// A duplicate would follow within group_wait of the first evaluation.
	assert.Never(t, func() bool {
		return rec.pd.count("trigger") > 1 || rec.am.count("firing") > 1 || rec.slack.count("firing") > 1
	}, e2eGroupWait+3*e2eInterval, 200*time.Millisecond, "no duplicate after the restart: %s", rec.counts())

	// The condition clears while the daemon is down: the resolve is sent after restart.
	require.NoError(t, d.stop())
	c.RestartMember(0)
	c.RestartMember(1)
	c.WaitLeader(t)
	d = startDaemon(t, args...)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 1, rec.pd.count("resolve"), "pagerduty resolve")
		assert.GreaterOrEqual(ct, rec.am.count("resolved"), 1, "alertmanager resolve")
		assert.Equal(ct, 1, rec.slack.count("resolved"), "slack resolve")
	}, 30*time.Second, 100*time.Millisecond, "resolves after the restart: %s", rec.counts())
	if !assert.Equal(t, 1, rec.pd.count("trigger"), "still one page: %s", rec.counts()) {
		t.Logf("daemon logs:\n%s", d.logs)
	}

	var notes struct {
		Notifications []struct {
			Receiver string `json:"receiver"`
			Status   string `json:"status"`
			Error    string `json:"error"`
		} `json:"notifications"`
	}
	require.Equal(t, http.StatusOK, request(t, "GET", d.url+"/api/v1/alerts/notifications?receiver=pagerduty", adminToken, "", &notes))
	assert.NotEmpty(t, notes.Notifications, "the notification log outlives restarts")
	rec.noProblems(t)
}

// A silence created over the API mutes exactly what it matches: one member's alerts are
// muted, another member's are not. Members down fire after 2 s here, so the test needs
// no minutes.
func TestEndToEndSilence(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	c := etcdtest.NewCluster(t, 3)
	rec := newReceivers(t)
	cfg := e2eConfig(t, c, rec.urls[0], rec.urls[1], rec.urls[2], `
  rules:
    EtcdMembersDown: {for: 2s}
`)
	d := startDaemon(t, "--config="+cfg)
	healthy := func(st statusView) bool { return st.Healthy && st.Reachable == 3 }
	waitStatus(t, d, time.Minute, healthy, "healthy at start")

	lead := c.Leader()
	a, b := (lead+1)%3, (lead+2)%3 // followers: no election, no other alert
	// IDs as the API shows them (and etcdctl prints them).
	var members struct {
		Members []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"members"`
	}
	require.Equal(t, http.StatusOK, request(t, "GET", d.url+"/api/v1/cluster/members", adminToken, "", &members))
	apiID := map[string]string{}
	for _, m := range members.Members {
		apiID[m.Name] = m.ID
	}
	nameA, nameB := c.Members[a].Name, c.Members[b].Name
	require.Equal(t, health.ID(c.Members[a].Server.MemberID()).Hex(), apiID[nameA])
	body := fmt.Sprintf(`{"matchers":[{"name":"member","value":%q,"isRegex":false,"isEqual":true}],
		"endsAt":%q,"createdBy":"ops","comment":"replacing the disk of %s"}`, nameA, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), nameA)
	var sil struct {
		ID     string `json:"id"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	require.Equal(t, http.StatusUnauthorized, postJSON(t, d.url+"/api/v1/silences", "", body, nil), "silences need the admin role")
	require.Equal(t, http.StatusOK, postJSON(t, d.url+"/api/v1/silences", adminToken, body, &sil))
	assert.Equal(t, "active", sil.Status.State)

	type apiAlert struct {
		Name   string            `json:"name"`
		State  string            `json:"state"`
		Labels map[string]string `json:"labels"`
		Status struct {
			SilencedBy []string `json:"silencedBy"`
		} `json:"status"`
	}
	firingFor := func(ct *assert.CollectT, name string) (apiAlert, bool) {
		var resp struct {
			Alerts []apiAlert `json:"alerts"`
		}
		assert.NoError(ct, getJSON(d.url+"/api/v1/alerts?state=firing", adminToken, &resp))
		for _, x := range resp.Alerts {
			if x.Name == "EtcdMembersDown" && x.Labels["member"] == name {
				return x, true
			}
		}
		return apiAlert{}, false
	}

	// Member A down: its alert fires, silenced, and nobody hears of it.
	c.StopMember(a)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		x, ok := firingFor(ct, nameA)
		if assert.True(ct, ok, "EtcdMembersDown of %s fires", nameA) {
			assert.Equal(ct, []string{sil.ID}, x.Status.SilencedBy)
			assert.Equal(ct, apiID[nameA], x.Labels["member_id"], "one ID format in every answer")
		}
	}, 20*time.Second, 50*time.Millisecond)
	c.RestartMember(a)
	waitStatus(t, d, time.Minute, healthy, "member A back")

	// Member B down: not matched, so Slack hears of it.
	c.StopMember(b)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, ok := firingFor(ct, nameB)
		assert.True(ct, ok, "EtcdMembersDown of %s fires", nameB)
		ns, _ := rec.slack.all()
		assert.NotEmpty(ct, ns, "slack is notified of member B")
	}, 3*notifyBound, 50*time.Millisecond)
	ns, _ := rec.slack.all()
	for _, n := range ns {
		assert.Contains(t, n.names, "EtcdMembersDown")
	}
	assert.Zero(t, rec.pd.count("trigger"), "a warning pages nobody")
	for _, sb := range rec.slackBodies() {
		assert.NotContains(t, sb, nameA, "member A's alert stays muted")
		assert.Contains(t, sb, nameB)
	}

	var expired struct {
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	require.Equal(t, http.StatusOK, request(t, "DELETE", d.url+"/api/v1/silences/"+sil.ID, adminToken, "", &expired))
	assert.Equal(t, "expired", expired.Status.State)
	c.RestartMember(b)
	rec.noProblems(t)
}

// Shutdown sends what is queued: an alert whose group is still in group_wait (an hour)
// reaches the webhook while the daemon stops, within api.shutdown_timeout.
func TestShutdownFlushesQueuedNotifications(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Status string `json:"status"`
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, a := range m.Alerts {
			got = append(got, m.Status+" "+a.Labels["alertname"])
		}
	}))
	defer hook.Close()
	// Every probe is slower than a nanosecond: EtcdHighRequestLatency fires at once.
	cfg := writeFile(t, "c.yaml", fmt.Sprintf(`
monitor: {health_check_interval: 200ms, metrics_interval: 200ms, latency_samples: 2}
api: {shutdown_timeout: 10s}
alerts:
  console: false
  route: {receiver: hook, group_wait: 1h}
  receivers: [{name: hook, type: webhook, url: %q}]
  thresholds: {request_latency_p99: 1ns}
  rules: {EtcdHighRequestLatency: {for: 0s}}
`, hook.URL))
	d := startDaemon(t, "--config="+cfg, endpoints())
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var resp struct {
			Alerts []struct {
				Name string `json:"name"`
			} `json:"alerts"`
		}
		assert.NoError(ct, getJSON(d.url+"/api/v1/alerts?state=firing", "", &resp))
		if assert.NotEmpty(ct, resp.Alerts) {
			assert.Equal(ct, "EtcdHighRequestLatency", resp.Alerts[0].Name)
		}
	}, 20*time.Second, 50*time.Millisecond)
	mu.Lock()
	assert.Empty(t, got, "still in group_wait")
	mu.Unlock()

	require.NoError(t, d.stop())
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, got, "firing EtcdHighRequestLatency", "sent during shutdown")
}

// postJSON POSTs a JSON body, as the API requires of a request that changes something,
// and decodes the answer into out (when not nil); it returns the status code.
func postJSON(t testing.TB, url, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if !assert.NoError(t, err) {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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
