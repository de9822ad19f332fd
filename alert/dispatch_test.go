package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"gopkg.in/yaml.v3"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// Stopping 2 of 3 members: the quorum-loss page fires at the first check and, with the
// default route, inhibitions and group_wait, each routed receiver gets exactly one
// notification: EtcdInsufficientMembers. The per-member alerts are inhibited.
func TestQuorumLossOneNotificationPerReceiver(t *testing.T) {
	pd, slack := &sink{}, &sink{}
	var cfg alert.Config
	require.NoError(t, yaml.Unmarshal([]byte(`
route:
  receiver: slack
  group_wait: 1ms
  routes:
    - matchers: ['severity="critical"']
      receiver: pagerduty
      continue: true
    - matchers: ['severity=~"critical|warning"']
      receiver: slack
`), &cfg))
	m, err := alert.New(alert.WithConfig(cfg), alert.WithReceiver("pagerduty", pd, true), alert.WithReceiver("slack", slack, true))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	at := t0
	for i := range 60 { // 5 minutes of checks every 5 s, quorum lost
		at = at.Add(5 * time.Second)
		_, err := m.EvaluateCluster(ctx, "prod", three(at, 2, 3), nil)
		require.NoError(t, err)
		if i == 0 {
			require.NoError(t, m.Flush(ctx), "the first check pages")
			require.Len(t, pd.notifications(), 1)
		}
	}
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing"}, pd.summary())
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing"}, slack.summary())
	var inhibited int
	for _, a := range m.Alerts() {
		if a.Name == "EtcdMembersDown" {
			assert.Equal(t, alert.Firing, a.State)
			assert.NotEmpty(t, a.Status.InhibitedBy, "per-member alerts are inhibited by the quorum loss")
			inhibited++
		}
	}
	assert.Equal(t, 2, inhibited)
	assert.Equal(t, map[string]string{"cluster": "prod", "alertname": "EtcdInsufficientMembers"}, pd.notifications()[0].GroupLabels)

	// Quorum back: one resolve each.
	_, err = m.EvaluateCluster(ctx, "prod", three(at.Add(5*time.Second)), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing", "resolved EtcdInsufficientMembers::resolved"}, pd.summary())
}

// Alerts of one group go out in one notification; a new alert in the group waits for
// group_interval; send_resolved false sends no resolutions.
func TestGroupingAndSendResolved(t *testing.T) {
	all, quiet := &sink{}, &sink{}
	var mu sync.Mutex
	down := map[uint64]bool{}
	rule := alert.Rule{Name: "Down", Severity: alert.Warning, Summary: "down", Needs: alert.NeedsHealth,
		Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
			mu.Lock()
			defer mu.Unlock()
			var out []alert.Finding
			for _, m := range h.Members {
				if down[uint64(m.Member.ID)] {
					out = append(out, alert.Finding{Labels: alert.MemberLabels(uint64(m.Member.ID), m.Name)})
				}
			}
			return out
		}}
	set := func(ids ...uint64) {
		mu.Lock()
		defer mu.Unlock()
		clear(down)
		for _, id := range ids {
			down[id] = true
		}
	}
	m, err := alert.New(alert.WithRules(rule), alert.WithConfig(alert.Config{
		Route:     &alert.Route{GroupWait: time.Hour, GroupInterval: time.Hour, RepeatInterval: 10 * time.Hour},
		Receivers: []alert.ReceiverConfig{},
	}), alert.WithReceiver("all", all, true), alert.WithReceiver("quiet", quiet, false))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	eval := func() {
		_, err := m.EvaluateCluster(ctx, "c1", three(time.Now()), nil)
		require.NoError(t, err)
	}
	set(1, 2)
	eval()
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, []string{"firing Down:m1:firing,Down:m2:firing"}, all.summary(), "one notification listing the group's alerts")
	set(1)
	eval()
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, []string{"firing Down:m1:firing,Down:m2:firing", "firing Down:m1:firing,Down:m2:resolved"}, all.summary())
	assert.Equal(t, []string{"firing Down:m1:firing,Down:m2:firing"}, quiet.summary(), "no resolve to a send_resolved=false receiver")
	set()
	eval()
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, "resolved Down:m1:resolved", all.summary()[2])
	assert.Len(t, quiet.summary(), 1)
	// Nothing more to say.
	require.NoError(t, m.Flush(ctx))
	assert.Len(t, all.summary(), 3)
}

// The routing tree: matchers with =, !=, =~ and !~, continue, and a default receiver.
func TestRouting(t *testing.T) {
	sinks := map[string]*sink{"pager": {}, "chat": {}, "prod-team": {}, "rest": {}}
	var cfg alert.Config
	require.NoError(t, yaml.Unmarshal([]byte(`
route:
  receiver: rest
  group_by: ['...']
  routes:
    - matchers: ['severity="critical"', 'cluster!="lab"']
      receiver: pager
      continue: true
    - matchers: ['cluster=~"prod-.*"', 'alertname!~"Noisy.*"']
      receiver: prod-team
    - matchers: ['severity=~"critical|warning"']
      receiver: chat
`), &cfg))
	opts := []alert.Option{alert.WithConfig(cfg)}
	for name, s := range sinks {
		opts = append(opts, alert.WithReceiver(name, s, true))
	}
	var rules []alert.Rule
	for _, r := range []struct {
		name string
		sev  alert.Severity
	}{{"Crit", alert.Critical}, {"Warn", alert.Warning}, {"Info", alert.Info}, {"NoisyWarn", alert.Warning}} {
		rules = append(rules, alert.Rule{Name: r.name, Severity: r.sev, Summary: r.name,
			Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding { return []alert.Finding{{}} }})
	}
	m, err := alert.New(append(opts, alert.WithRules(rules...))...)
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	for _, c := range []string{"prod-eu", "lab", "staging"} {
		_, err := m.EvaluateCluster(ctx, c, three(t0), nil)
		require.NoError(t, err)
	}
	require.NoError(t, m.Flush(ctx))
	got := map[string][]string{}
	for name, s := range sinks {
		for _, n := range s.notifications() {
			got[name] = append(got[name], n.Alerts[0].Labels["cluster"]+"/"+n.Alerts[0].Name)
		}
	}
	assert.ElementsMatch(t, []string{"prod-eu/Crit", "staging/Crit"}, got["pager"])
	assert.ElementsMatch(t, []string{"prod-eu/Crit", "prod-eu/Warn", "prod-eu/Info"}, got["prod-team"])
	assert.ElementsMatch(t, []string{"prod-eu/NoisyWarn", "lab/Crit", "lab/Warn", "lab/NoisyWarn", "staging/Crit", "staging/Warn", "staging/NoisyWarn"}, got["chat"])
	assert.ElementsMatch(t, []string{"lab/Info", "staging/Info"}, got["rest"])
}

// Bad configuration is an error naming the field.
func TestConfigErrorsNameTheField(t *testing.T) {
	cases := map[string]string{
		"route:\n  receiver: nobody\n":                                             "route.receiver",
		"route:\n  routes:\n    - matchers: ['severity=~\"(\"']\n":                 "route.routes[0].matchers[0]",
		"route:\n  group_by: ['bad-label']\n":                                      "route.group_by[0]",
		"route:\n  group_wait: -1s\n":                                              "route.group_wait",
		"receivers:\n  - {name: x, type: carrier-pigeon}\n":                        "receivers[0].type",
		"receivers:\n  - {name: x, type: slack}\n":                                 "receivers[0].url",
		"receivers:\n  - {name: x, type: pagerduty, routing_key: short}\n":         "receivers[0].routing_key",
		"receivers:\n  - {name: x, type: webhook, url: 'ftp://x'}\n":               "receivers[0].url",
		"receivers:\n  - {name: x, type: console}\n  - {name: x, type: console}\n": "receivers[1].name",
		"inhibit_rules:\n  - source_matchers: ['a=\"b\"']\n":                       "inhibit_rules[0]",
		"thresholds:\n  quota_used: 2\n":                                           "thresholds.quota_used",
		"cluster_thresholds:\n  prod:\n    fsync_p99: 0s\n":                        "cluster_thresholds.prod.fsync_p99",
		"rules:\n  EtcdMembersDown:\n    for: -1m\n":                               "rules.EtcdMembersDown.for",
		"receivers:\n  - {name: m, type: email, addr: 'smtp.example.com:25', from: a@b.c, to: [d@e.f], username: u, password: p, allow_plaintext: true}\n": "receivers[0].allow_plaintext",
	}
	for text, field := range cases {
		var cfg alert.Config
		err := yaml.Unmarshal([]byte(text), &cfg)
		if err == nil {
			err = cfg.Validate()
		}
		require.Error(t, err, text)
		assert.ErrorIs(t, err, alert.ErrInvalidArgument, text)
		var fe *alert.FieldError
		if assert.ErrorAs(t, err, &fe, text) {
			assert.Equal(t, field, fe.Field, text)
		}
		if err == nil {
			_, err = alert.New(alert.WithConfig(cfg))
			assert.ErrorIs(t, err, alert.ErrInvalidArgument)
		}
	}
	// A YAML thresholds block starts from the defaults.
	var cfg alert.Config
	require.NoError(t, yaml.Unmarshal([]byte("thresholds:\n  fsync_p99: 300ms\n"), &cfg))
	want := alert.DefaultThresholds()
	want.FsyncP99 = 300 * time.Millisecond
	assert.Equal(t, want, *cfg.Thresholds)
	require.NoError(t, cfg.Validate())
}

// Inhibition: a source alert mutes matching targets with equal labels only.
func TestInhibition(t *testing.T) {
	rec := &sink{}
	mk := func(name string, sev alert.Severity, labels ...map[string]string) alert.Rule {
		return alert.Rule{Name: name, Severity: sev, Summary: name, Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding {
			var out []alert.Finding
			for _, l := range labels {
				out = append(out, alert.Finding{Labels: l})
			}
			return out
		}}
	}
	m, err := alert.New(alert.WithConfig(timing(time.Millisecond, time.Hour, time.Hour)), alert.WithReceiver("rec", rec, true),
		alert.WithRules(
			mk("EtcdInsufficientMembers", alert.Critical, nil),
			mk("EtcdHighFsyncDurations", alert.Warning, alert.MemberLabels(1, "m1")),
			mk("EtcdHighFsyncDurations", alert.Critical, alert.MemberLabels(1, "m1")),
			mk("Cluster", alert.Warning, nil)))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	_, err = m.EvaluateCluster(ctx, "a", three(t0), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	var sent []string
	for _, n := range rec.notifications() {
		for _, a := range n.Alerts {
			sent = append(sent, a.Name+"/"+a.Severity.String())
		}
	}
	assert.ElementsMatch(t, []string{"EtcdInsufficientMembers/critical", "Cluster/warning"}, sent,
		"the fsync alerts are per member (inhibited by the quorum loss), and the warning tier also by the critical one")
	for _, a := range m.Alerts() {
		if a.Name == "EtcdHighFsyncDurations" && a.Severity == alert.Warning {
			assert.Len(t, a.Status.InhibitedBy, 2)
		}
	}
}

// Silences: validation names the field; a silence mutes exactly what it matches; expiry
// unmutes; silenced alerts are listed as such.
func TestSilences(t *testing.T) {
	rec := &sink{}
	mk := func(name string) alert.Rule {
		return alert.Rule{Name: name, Severity: alert.Warning, Summary: name,
			Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding { return []alert.Finding{{}} }}
	}
	m, err := alert.New(alert.WithConfig(timing(time.Millisecond, time.Millisecond, time.Hour)), alert.WithReceiver("rec", rec, true),
		alert.WithRules(mk("A"), mk("B")))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	end := time.Now().Add(time.Hour)
	bad := map[string]alert.Silence{
		"matchers":          {EndsAt: end, CreatedBy: "me", Comment: "x"},
		"matchers[0].value": {Matchers: alert.Matchers{{Name: "alertname", Type: alert.MatchRegexp, Value: "("}}, EndsAt: end, CreatedBy: "me", Comment: "x"},
		"endsAt":            {Matchers: alert.MustParseMatchers(`alertname="A"`), CreatedBy: "me", Comment: "x"},
		"createdBy":         {Matchers: alert.MustParseMatchers(`alertname="A"`), EndsAt: end, Comment: "x"},
		"comment":           {Matchers: alert.MustParseMatchers(`alertname="A"`), EndsAt: end, CreatedBy: "me"},
	}
	for field, s := range bad {
		_, err := m.CreateSilence(ctx, s)
		var fe *alert.FieldError
		require.ErrorAs(t, err, &fe, field)
		assert.Equal(t, field, fe.Field)
		assert.ErrorIs(t, err, alert.ErrInvalidArgument)
	}
	_, err = m.CreateSilence(ctx, alert.Silence{Matchers: alert.MustParseMatchers(`alertname=~".*"`), EndsAt: end, CreatedBy: "me", Comment: "all"})
	assert.ErrorIs(t, err, alert.ErrInvalidArgument, "a silence matching everything")

	s, err := m.CreateSilence(ctx, alert.Silence{Matchers: alert.MustParseMatchers(`alertname="A"`, `cluster="c1"`), EndsAt: end, CreatedBy: "me", Comment: "maintenance"})
	require.NoError(t, err)
	assert.NotEmpty(t, s.ID)
	assert.Equal(t, alert.SilenceActive, s.Status.State)
	for _, c := range []string{"c1", "c2"} {
		_, err = m.EvaluateCluster(ctx, c, three(t0), nil)
		require.NoError(t, err)
	}
	require.NoError(t, m.Flush(ctx))
	var sent []string
	for _, n := range rec.notifications() {
		sent = append(sent, n.Alerts[0].Labels["cluster"]+"/"+n.Alerts[0].Name)
	}
	assert.ElementsMatch(t, []string{"c1/B", "c2/A", "c2/B"}, sent)
	for _, a := range m.Alerts() {
		assert.Equal(t, a.Name == "A" && a.Labels["cluster"] == "c1", len(a.Status.SilencedBy) == 1, "%s %v", a.Name, a.Labels)
	}
	list, err := m.Silences(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)

	require.NoError(t, m.ExpireSilence(ctx, s.ID))
	require.NoError(t, m.ExpireSilence(ctx, s.ID), "idempotent")
	assert.ErrorIs(t, m.ExpireSilence(ctx, "nope"), alert.ErrSilenceNotFound)
	got, err := m.Silence(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, alert.SilenceExpired, got.Status.State)
	require.NoError(t, m.Flush(ctx))
	assert.Len(t, rec.notifications(), 4, "unmuted: c1/A is notified")
}

// One notification stuck in retries (429 with a long Retry-After) never delays newer
// notifications of the same receiver; critical ones go first.
func TestQueueStuckRetryDoesNotBlock(t *testing.T) {
	var mu sync.Mutex
	var order []string
	blocked := true
	s := alert.SenderFunc(func(_ context.Context, n alert.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		name := n.Alerts[0].Name
		if name == "Stuck" && blocked {
			return &alert.HTTPError{StatusCode: http.StatusTooManyRequests, RetryAfter: time.Hour}
		}
		order = append(order, name)
		return nil
	})
	var on sync.Map
	mk := func(name string, sev alert.Severity) alert.Rule {
		return alert.Rule{Name: name, Severity: sev, Summary: name, Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding {
			if _, ok := on.Load(name); ok {
				return []alert.Finding{{}}
			}
			return nil
		}}
	}
	retry := alert.DefaultRetry()
	retry.MaxRetryAfter = time.Hour
	m, err := alert.New(alert.WithConfig(timing(time.Hour, time.Hour, time.Hour)), alert.WithReceiver("slack", s, true),
		alert.WithRetry(retry), alert.WithShutdownTimeout(50*time.Millisecond),
		alert.WithRules(mk("Stuck", alert.Info), mk("Later", alert.Warning), mk("Page", alert.Critical)))
	require.NoError(t, err)
	ctx := context.Background()
	on.Store("Stuck", true)
	_, err = m.EvaluateCluster(ctx, "c", three(t0), nil)
	require.NoError(t, err)
	flushCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	assert.ErrorIs(t, m.Flush(flushCtx), context.DeadlineExceeded, "Stuck waits an hour to retry")
	cancel()
	on.Store("Later", true)
	on.Store("Page", true)
	_, err = m.EvaluateCluster(ctx, "c", three(t0.Add(time.Second)), nil)
	require.NoError(t, err)
	// Flush cannot finish (Stuck still waits), but the others are delivered meanwhile.
	go func() {
		fctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_ = m.Flush(fctx)
	}()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		mu.Lock()
		defer mu.Unlock()
		assert.ElementsMatch(c, []string{"Page", "Later"}, order, "neither waits behind the stuck one")
	}, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, m.Close())
	var dropped bool
	recs, err := m.Notifications(ctx, alert.NotificationQuery{Receiver: "slack"})
	require.NoError(t, err)
	for _, r := range recs {
		if r.Status == "dropped" {
			dropped = true
		}
	}
	assert.True(t, dropped, "the stuck one is recorded as dropped at Close: %+v", recs)
}

// Secrets — Slack's webhook path, a webhook's token in its path and query, PagerDuty's
// routing key — never reach a log line, a delivery record or the notification log.
func TestSecretsRedacted(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	const slackPath = "/services/T000/B000/SECRETTOKEN"
	// A server that closes connections makes the client's error quote the URL.
	dead := newReceiver(t, http.StatusOK)
	dead.Close()
	echo := newReceiver(t, http.StatusBadRequest)
	reg := prometheus.NewPedanticRegistry()
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithLogger(zap.New(core)), alert.WithRules(sw.rule()), alert.WithRegisterer(reg),
		alert.WithRetry(alert.Retry{Attempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}),
		alert.WithConfig(alert.Config{Receivers: []alert.ReceiverConfig{
			{Name: "slack", Type: alert.TypeSlack, URL: dead.URL + slackPath},
			{Name: "hook", Type: alert.TypeWebhook, URL: dead.URL + "/hook/HOOKSECRET?token=QUERYSECRET", Headers: map[string]string{"Authorization": "Bearer HEADERSECRET"}},
			{Name: "pd", Type: alert.TypePagerDuty, URL: echo.URL + "/enqueue", RoutingKey: routingKey},
		}}))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = m.Evaluate(ctx, report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	recs, err := m.Notifications(ctx, alert.NotificationQuery{Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, 2.0, testutil.ToFloat64(collectorFor(t, reg, "slack", "failure")))
	assert.Equal(t, 1.0, testutil.ToFloat64(collectorFor(t, reg, "pd", "failure")), "a 400 is not retried")
	require.NoError(t, m.Close())
	var text strings.Builder
	for _, e := range logs.All() {
		text.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			text.WriteString(" " + k + "=" + strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(toString(v), "\n", " "), "\r", "")))
		}
		text.WriteString("\n")
	}
	for _, d := range m.Deliveries() {
		text.WriteString(d.Error + "\n")
	}
	for _, r := range recs {
		text.WriteString(r.Error + "\n")
	}
	out := text.String()
	assert.Contains(t, out, "<redacted>", "the errors were recorded")
	for _, secret := range []string{"SECRETTOKEN", "HOOKSECRET", "QUERYSECRET", "HEADERSECRET", routingKey} {
		assert.NotContains(t, out, secret)
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

// collectorFor finds etcd_monitor_notifications_total{receiver,result} in reg.
func collectorFor(t *testing.T, reg *prometheus.Registry, receiver, result string) prometheus.Collector {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != "etcd_monitor_notifications_total" {
			continue
		}
		for _, mm := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range mm.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["receiver"] == receiver && l["result"] == result {
				return constCounter(mm.GetCounter().GetValue())
			}
		}
	}
	t.Fatalf("no etcd_monitor_notifications_total{receiver=%q,result=%q}", receiver, result)
	return nil
}

type constCounter float64

func (c constCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc() }
func (c constCounter) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc(), prometheus.CounterValue, float64(c))
}
func (constCounter) desc() *prometheus.Desc { return prometheus.NewDesc("x", "x", nil, nil) }

// Nil options are errors, never panics.
func TestNilOption(t *testing.T) {
	_, err := alert.New(nil)
	assert.ErrorIs(t, err, alert.ErrInvalidArgument)
	_, err = alert.New(alert.WithStore(nil))
	assert.ErrorIs(t, err, alert.ErrInvalidArgument)
	_, err = alert.New(alert.WithRegisterer(nil))
	assert.ErrorIs(t, err, alert.ErrInvalidArgument)
	_, err = alert.New(alert.WithReceiver("x", nil, true))
	assert.ErrorIs(t, err, alert.ErrInvalidArgument)
	assert.False(t, errors.Is(err, alert.ErrClosed))
}

// When every sending slot of a receiver is busy, the next free slot goes to the most
// severe waiting notification.
func TestQueueCriticalFirst(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan string, 10)
	var mu sync.Mutex
	var order []string
	s := alert.SenderFunc(func(ctx context.Context, n alert.Notification) error {
		name := n.Alerts[0].Name
		if strings.HasPrefix(name, "Filler") {
			entered <- name
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		return nil
	})
	var on sync.Map
	var rules []alert.Rule
	for _, r := range []struct {
		name string
		sev  alert.Severity
	}{{"Filler1", alert.Info}, {"Filler2", alert.Info}, {"Filler3", alert.Info}, {"Filler4", alert.Info}, {"Info", alert.Info}, {"Warn", alert.Warning}, {"Page", alert.Critical}} {
		rules = append(rules, alert.Rule{Name: r.name, Severity: r.sev, Summary: r.name, Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding {
			if _, ok := on.Load(r.name); ok {
				return []alert.Finding{{}}
			}
			return nil
		}})
	}
	m, err := alert.New(alert.WithConfig(timing(time.Hour, time.Hour, time.Hour)), alert.WithReceiver("r", s, true), alert.WithRules(rules...))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	// Flush queues every due notification before it waits for the receiver, so once it
	// has returned (its wait cut short: the fillers hold every slot) all of them are
	// queued; a flush left running in the background could still be queueing them when
	// a slot is freed, and the slot would go to whichever came first.
	flush := func() {
		fctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_ = m.Flush(fctx)
	}
	for i := 1; i <= 4; i++ {
		on.Store(fmt.Sprintf("Filler%d", i), true)
	}
	_, err = m.EvaluateCluster(ctx, "c", three(t0), nil)
	require.NoError(t, err)
	flush()
	for range 4 {
		<-entered // every sending slot is busy
	}
	on.Store("Info", true)
	on.Store("Warn", true)
	on.Store("Page", true)
	_, err = m.EvaluateCluster(ctx, "c", three(t0.Add(time.Second)), nil)
	require.NoError(t, err)
	flush()
	// Free one slot: the waiting ones go through it one after the other (they do not
	// block), so in severity order. A second slot freed meanwhile would send two at once,
	// in whichever order their goroutines ran.
	release <- struct{}{}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		mu.Lock()
		defer mu.Unlock()
		assert.Subset(c, order, []string{"Page", "Warn", "Info"})
	}, 5*time.Second, 5*time.Millisecond)
	close(release)
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, n := range order {
		if !strings.HasPrefix(n, "Filler") {
			got = append(got, n)
		}
	}
	assert.Equal(t, []string{"Page", "Warn", "Info"}, got, "%v", order)
}

// A silence created while an alert is firing stops repeats, but the alert's resolve
// still goes out, so the PagerDuty incident it opened is closed.
func TestSilencedResolveStillSent(t *testing.T) {
	rec := &sink{}
	var on sync.Map
	on.Store("x", true)
	r := alert.Rule{Name: "A", Severity: alert.Critical, Summary: "A", Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding {
		if _, ok := on.Load("x"); ok {
			return []alert.Finding{{}}
		}
		return nil
	}}
	m, err := alert.New(alert.WithConfig(timing(time.Hour, time.Hour, time.Hour)), alert.WithReceiver("pd", rec, true), alert.WithRules(r))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	_, err = m.EvaluateCluster(ctx, "c", three(t0), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	_, err = m.CreateSilence(ctx, alert.Silence{Matchers: alert.MustParseMatchers(`alertname="A"`), EndsAt: time.Now().Add(time.Hour), CreatedBy: "me", Comment: "x"})
	require.NoError(t, err)
	on.Delete("x")
	_, err = m.EvaluateCluster(ctx, "c", three(t0.Add(time.Minute)), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, []string{"firing A::firing", "resolved A::resolved"}, rec.summary())
}

// A matcher that does not parse names its path and its line.
func TestMatcherErrorLine(t *testing.T) {
	var cfg alert.Config
	require.NoError(t, yaml.Unmarshal([]byte("route:\n  routes:\n    - receiver: ''\n      matchers:\n        - 'cluster=~\"(\"'\n"), &cfg))
	err := cfg.Validate()
	var fe *alert.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "route.routes[0].matchers[0]", fe.Field)
	assert.Contains(t, fe.Reason, "line 5")
}

// History records are copies: a later resolve never changes an earlier firing record.
func TestHistoryRecordsAreStable(t *testing.T) {
	var on sync.Map
	r := alert.Rule{Name: "A", Severity: alert.Warning, Summary: "A", Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding {
		if _, ok := on.Load("x"); ok {
			return []alert.Finding{{Labels: alert.MemberLabels(1, "m1")}, {Labels: alert.MemberLabels(2, "m2")}}
		}
		return nil
	}}
	m, err := alert.New(alert.WithRules(r))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	for i := range 4 {
		if i%2 == 0 {
			on.Store("x", true)
		} else {
			on.Delete("x")
		}
		_, err := m.EvaluateCluster(ctx, "c", three(t0.Add(time.Duration(i)*time.Minute)), nil)
		require.NoError(t, err)
	}
	h := m.History()
	require.Len(t, h, 8)
	for _, a := range h {
		if a.State == alert.Firing {
			assert.True(t, a.EndsAt.IsZero(), "%+v", a)
		} else {
			assert.False(t, a.EndsAt.IsZero())
			assert.True(t, a.EndsAt.After(a.StartsAt))
		}
	}
	h[0].Labels["member"] = "mutated"
	assert.NotEqual(t, "mutated", m.History()[0].Labels["member"], "callers get their own copies")
}

// A receiver's configuration shown as JSON carries no secret.
func TestReceiverConfigJSONRedacted(t *testing.T) {
	b, err := json.Marshal(alert.ReceiverConfig{Name: "s", Type: alert.TypeSlack, URL: "https://hooks.slack.com/services/T/B/SECRET",
		Headers: map[string]string{"Authorization": "Bearer TOKEN"}, RoutingKey: routingKey, Password: "PASSWORD"})
	require.NoError(t, err)
	for _, secret := range []string{"SECRET", "TOKEN", routingKey, "PASSWORD"} {
		assert.NotContains(t, string(b), secret)
	}
	assert.Contains(t, string(b), `https://hooks.slack.com/\u003credacted\u003e`)
}

// an alert notified firing, then inhibited (the cluster became
// unreachable), must still get its resolve when it clears — the incident it opened is
// closed.
func TestInhibitedAfterNotifiedStillResolves(t *testing.T) {
	rec := &sink{}
	m, err := alert.New(alert.WithReceiver("pd", rec, true), alert.WithConfig(timing(time.Hour, time.Hour, time.Hour)),
		alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers", "EtcdClusterUnreachable")...))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	step := func(at time.Duration, down ...uint64) {
		_, err := m.EvaluateCluster(ctx, "prod", three(t0.Add(at), down...), nil)
		require.NoError(t, err)
		require.NoError(t, m.Flush(ctx))
	}
	step(0, 2, 3)              // quorum lost: paged
	step(time.Minute, 1, 2, 3) // unreachable: inhibits the quorum alert
	step(2 * time.Minute)      // all back
	assert.Equal(t, []string{
		"firing EtcdInsufficientMembers::firing",
		"firing EtcdClusterUnreachable::firing",
		"resolved EtcdClusterUnreachable::resolved",
		"resolved EtcdInsufficientMembers::resolved",
	}, sortedSummary(rec))
}

// sortedSummary orders notifications of different groups by their text after the first
// (groups flush in any order).
func sortedSummary(s *sink) []string {
	out := s.summary()
	if len(out) > 2 {
		rest := out[2:]
		slices.SortFunc(rest, func(a, b string) int {
			// resolves of the unreachable alert first, as they happened first
			ra, rb := strings.Contains(a, "Unreachable"), strings.Contains(b, "Unreachable")
			switch {
			case ra && !rb:
				return -1
			case rb && !ra:
				return 1
			}
			return strings.Compare(a, b)
		})
	}
	return out
}

// group_wait counts from the health check that saw the condition, not
// from when its (slow) evaluation ran. A check that started group_wait ago is notified
// at once, without Flush.
func TestGroupWaitFromDataTime(t *testing.T) {
	rec := &sink{}
	m, err := alert.New(alert.WithReceiver("pd", rec, true), alert.WithConfig(timing(time.Hour, time.Hour, time.Hour)),
		alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers")...))
	require.NoError(t, err)
	defer m.Close()
	_, err = m.EvaluateCluster(context.Background(), "prod", three(time.Now().Add(-time.Hour), 2, 3), nil)
	require.NoError(t, err)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"firing EtcdInsufficientMembers::firing"}, rec.summary())
	}, 10*time.Second, 10*time.Millisecond)
}

// With group_wait left to its defaults, the cluster-wide outage alerts wait 2 s and
// every other alert 10 s, both counted from the check that raised them: a lost quorum
// seen by a check that started 3 s ago is notified at once, an alarm raised by the same
// check (critical, but about one member; no inhibition here) 7 s later.
func TestOutageGroupWaitDefault(t *testing.T) {
	rec := &sink{}
	m, err := alert.New(alert.WithReceiver("pd", rec, true), alert.WithConfig(alert.Config{InhibitRules: []alert.InhibitRule{}}),
		alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers", "EtcdAlarm")...))
	require.NoError(t, err)
	defer m.Close()
	h := three(time.Now().Add(-3*time.Second), 2, 3)
	h.Alarms = []health.Alarm{{MemberID: 1, Type: "NOSPACE"}}
	_, err = m.EvaluateCluster(context.Background(), "prod", h, nil)
	require.NoError(t, err)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Contains(c, rec.summary(), "firing EtcdInsufficientMembers::firing")
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing"}, rec.summary(), "the alarm's group still waits")
	require.NoError(t, m.Flush(context.Background()))
	assert.Contains(t, rec.summary(), "firing EtcdAlarm:m1:firing")
}

// A group_wait set on a route (here the root) applies to the outage alerts too, as in
// Alertmanager.
func TestOutageGroupWaitRouteSetting(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route *alert.Route
	}{
		{"root", &alert.Route{GroupWait: time.Hour}},
		{"parent", &alert.Route{GroupWait: time.Hour, Routes: []*alert.Route{{Matchers: alert.MustParseMatchers(`severity="critical"`)}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &sink{}
			m, err := alert.New(alert.WithReceiver("pd", rec, true), alert.WithConfig(alert.Config{Route: tc.route}),
				alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers")...))
			require.NoError(t, err)
			defer m.Close()
			_, err = m.EvaluateCluster(context.Background(), "prod", three(time.Now().Add(-3*time.Second), 2, 3), nil)
			require.NoError(t, err)
			assert.Never(t, func() bool { return len(rec.notifications()) > 0 }, 500*time.Millisecond, 10*time.Millisecond)
			require.NoError(t, m.Flush(context.Background()))
			assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing"}, rec.summary())
		})
	}
}

// Every delivery attempt, failed ones included, is observed in
// etcd_monitor_notification_duration_seconds{receiver}, registered (lint-clean) with the
// counter and unregistered at Close.
func TestNotificationDurationHistogram(t *testing.T) {
	ok := newReceiver(t, http.StatusOK)
	bad := newReceiver(t, http.StatusBadRequest)
	reg := prometheus.NewPedanticRegistry()
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithRegisterer(reg),
		alert.WithConfig(alert.Config{Receivers: []alert.ReceiverConfig{
			{Name: "ok", Type: alert.TypeWebhook, URL: ok.URL},
			{Name: "bad", Type: alert.TypeWebhook, URL: bad.URL},
		}}))
	require.NoError(t, err)
	_, err = m.Evaluate(context.Background(), report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(context.Background()))
	problems, err := testutil.GatherAndLint(reg, "etcd_monitor_notification_duration_seconds")
	require.NoError(t, err)
	assert.Empty(t, problems)
	fams, err := reg.Gather()
	require.NoError(t, err)
	counts := map[string]uint64{}
	for _, f := range fams {
		if f.GetName() != "etcd_monitor_notification_duration_seconds" {
			continue
		}
		for _, mm := range f.GetMetric() {
			for _, lp := range mm.GetLabel() {
				if lp.GetName() == "receiver" {
					counts[lp.GetValue()] = mm.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	assert.Equal(t, map[string]uint64{"ok": 1, "bad": 1}, counts)
	require.NoError(t, m.Close())
	n, err := testutil.GatherAndCount(reg, "etcd_monitor_notification_duration_seconds")
	require.NoError(t, err)
	assert.Zero(t, n, "unregistered at Close")
}

// Grouped by cluster only, a lost quorum that joins a group another alert opened (its
// first notification not yet sent, waiting 10 s) is still paged 2 s after its check:
// the group is notified once, with both alerts, at the outage alert's wait.
func TestOutageGroupWaitJoinsWaitingGroup(t *testing.T) {
	t.Parallel() // waits out the outage group_wait; nothing shared
	rec := &sink{}
	m, err := alert.New(alert.WithReceiver("pd", rec, true),
		alert.WithConfig(alert.Config{Route: &alert.Route{GroupBy: []string{"cluster"}}, InhibitRules: []alert.InhibitRule{}}),
		alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers", "EtcdAlarm")...))
	require.NoError(t, err)
	defer m.Close()
	start := time.Now()
	h := three(start)
	h.Alarms = []health.Alarm{{MemberID: 1, Type: "NOSPACE"}}
	_, err = m.EvaluateCluster(context.Background(), "prod", h, nil) // the group waits until start+10s
	require.NoError(t, err)
	h = three(start.Add(100*time.Millisecond), 2, 3)
	h.Alarms = []health.Alarm{{MemberID: 1, Type: "NOSPACE"}}
	_, err = m.EvaluateCluster(context.Background(), "prod", h, nil) // due at start+2.1s
	require.NoError(t, err)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"firing EtcdAlarm:m1:firing,EtcdInsufficientMembers::firing"}, rec.summary())
	}, 6*time.Second, 10*time.Millisecond, "paged at the outage wait, not the alarm's 10 s")
	require.NoError(t, m.Flush(context.Background()))
	assert.Len(t, rec.notifications(), 1, "one incident, one notification")
}
