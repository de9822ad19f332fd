package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

const routingKey = "0123456789abcdef0123456789abcdef"

func deliveriesOf(m *alert.Manager, notifier string) []alert.Delivery {
	var out []alert.Delivery
	for _, d := range m.Deliveries() {
		if d.Notifier == notifier {
			out = append(out, d)
		}
	}
	return out
}

// Guarantee 6: the exact Slack, PagerDuty and webhook payloads, through a 429 with
// Retry-After and a 500 before success; every attempt is in the history.
func TestNotifiersPayloadsAndRetries(t *testing.T) {
	hook := newReceiver(t, http.StatusOK, http.StatusTooManyRequests, http.StatusInternalServerError)
	slack := newReceiver(t, http.StatusOK, http.StatusTooManyRequests, http.StatusInternalServerError)
	pd := newReceiver(t, http.StatusAccepted, http.StatusTooManyRequests, http.StatusInternalServerError)
	sw := &switchRule{on: true}
	m, err := alert.New(
		alert.WithRules(sw.rule()),
		alert.WithRetry(fastRetry()),
		alert.WithConfig(timing(time.Hour, time.Hour, time.Hour)), // only Flush sends
		alert.WithWebhook(alert.WebhookConfig{URL: hook.URL, Receiver: "ops", ExternalURL: "http://monitor:8080"}),
		alert.WithSlack(alert.SlackConfig{WebhookURL: slack.URL, Channel: "#etcd"}),
		alert.WithPagerDuty(alert.PagerDutyConfig{RoutingKey: routingKey, URL: pd.URL, Source: "etcd-prod"}),
	)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })

	r := report(t)
	member := r.Members[0].Name
	firing, err := m.Evaluate(context.Background(), r, nil)
	require.NoError(t, err)
	require.Len(t, firing, 1)
	a := firing[0]
	assert.Equal(t, alert.Fingerprint("EtcdTestSwitch", map[string]string{"member": member, "severity": "critical"}), a.Fingerprint)
	assert.Equal(t, alert.Firing, a.State)
	assert.True(t, a.EndsAt.IsZero())
	require.NoError(t, m.Flush(etcdtest.Context(t, 30*time.Second)))

	for name, rcv := range map[string]*receiver{"webhook": hook, "slack": slack, "pagerduty": pd} {
		reqs := rcv.requests()
		require.Len(t, reqs, 3, name)
		assert.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), time.Second, "%s: Retry-After: 1 honoured", name)
		ds := deliveriesOf(m, name)
		require.Len(t, ds, 3, name)
		for i, d := range ds {
			assert.Equal(t, i+1, d.Attempt)
			assert.Equal(t, a.Fingerprint, d.Fingerprint)
			assert.Equal(t, i == 2, d.Delivered)
			assert.Equal(t, i == 2, d.Final)
		}
		assert.Contains(t, ds[0].Error, "429")
		assert.Contains(t, ds[1].Error, "500")
		assert.Empty(t, ds[2].Error)
	}

	started := a.StartsAt.Format(time.RFC3339Nano)
	assert.JSONEq(t, fmt.Sprintf(`{
		"version": "4",
		"groupKey": "route.routes[0]:{alertname=\"EtcdTestSwitch\"}",
		"truncatedAlerts": 0,
		"status": "firing",
		"receiver": "ops",
		"groupLabels": {"alertname": "EtcdTestSwitch"},
		"commonLabels": {"alertname": "EtcdTestSwitch", "severity": "critical", "member": %[2]q},
		"commonAnnotations": {"summary": "test switch is on", "description": "switched on by the test"},
		"externalURL": "http://monitor:8080",
		"alerts": [{
			"status": "firing",
			"labels": {"alertname": "EtcdTestSwitch", "severity": "critical", "member": %[2]q},
			"annotations": {"summary": "test switch is on", "description": "switched on by the test"},
			"startsAt": %[3]q,
			"endsAt": "0001-01-01T00:00:00Z",
			"generatorURL": "http://monitor:8080",
			"fingerprint": %[1]q
		}]
	}`, a.Fingerprint, member, started), string(hook.requests()[2].body))

	dedupKey := pd.decode(t, 2)["dedup_key"].(string)
	assert.Len(t, dedupKey, 32, "one incident per group: a hash of receiver and group key")
	assert.JSONEq(t, fmt.Sprintf(`{
		"routing_key": %[1]q,
		"event_action": "trigger",
		"dedup_key": %[2]q,
		"payload": {
			"summary": "EtcdTestSwitch: test switch is on",
			"source": "etcd-prod",
			"severity": "critical",
			"timestamp": %[3]q,
			"component": "etcd",
			"class": "EtcdTestSwitch",
			"custom_details": {"alertname": "EtcdTestSwitch", "firing": "1", "alerts": "EtcdTestSwitch member %[4]s: switched on by the test"}
		}
	}`, routingKey, dedupKey, a.StartsAt.UTC().Format(time.RFC3339), member), string(pd.requests()[2].body))

	assert.JSONEq(t, fmt.Sprintf(`{
		"channel": "#etcd",
		"text": ":rotating_light: [FIRING:1] EtcdTestSwitch: test switch is on",
		"blocks": [
			{"type": "header", "text": {"type": "plain_text", "text": "[FIRING:1] EtcdTestSwitch"}},
			{"type": "section", "text": {"type": "mrkdwn", "text": "*FIRING* test switch is on\nswitched on by the test"},
			 "fields": [
				{"type": "mrkdwn", "text": "*Severity*\ncritical"},
				{"type": "mrkdwn", "text": "*Started*\n%[1]s"},
				{"type": "mrkdwn", "text": "*member*\n%[2]s"}
			 ]},
			{"type": "context", "elements": [{"type": "mrkdwn", "text": "fingerprint `+"`%[3]s`"+`"}]}
		]
	}`, a.StartsAt.UTC().Format("2006-01-02 15:04:05 MST"), member, a.Fingerprint), string(slack.requests()[2].body))

	// Resolution: PagerDuty resolves the same dedup_key.
	sw.set(false)
	firing, err = m.Evaluate(context.Background(), r, nil)
	require.NoError(t, err)
	assert.Empty(t, firing)
	require.NoError(t, m.Flush(etcdtest.Context(t, 30*time.Second)))
	assert.JSONEq(t, fmt.Sprintf(`{"routing_key": %q, "event_action": "resolve", "dedup_key": %q}`, routingKey, dedupKey),
		string(pd.requests()[3].body))
	resolved := hook.decode(t, 3)
	assert.Equal(t, "resolved", resolved["status"])
	alerts := resolved["alerts"].([]any)
	assert.Equal(t, a.Fingerprint, alerts[0].(map[string]any)["fingerprint"])
	assert.NotEqual(t, "0001-01-01T00:00:00Z", alerts[0].(map[string]any)["endsAt"])
	assert.Contains(t, slack.decode(t, 3)["text"], "[RESOLVED]")

	h := m.History()
	require.Len(t, h, 2)
	assert.Equal(t, alert.Firing, h[0].State)
	assert.Equal(t, alert.Resolved, h[1].State)
	assert.Equal(t, h[0].Fingerprint, h[1].Fingerprint)
	assert.Equal(t, h[0].StartsAt, h[1].StartsAt)
	assert.False(t, h[1].EndsAt.Before(h[1].StartsAt))
}

// The same alert evaluated 100 times yields one notification; its resolution sends a
// PagerDuty resolve with the same dedup_key.
func TestRepeatedEvaluationNotifiesOnce(t *testing.T) {
	pd := newReceiver(t, http.StatusAccepted)
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithConfig(timing(time.Millisecond, time.Millisecond, time.Hour)),
		alert.WithPagerDuty(alert.PagerDutyConfig{RoutingKey: routingKey, URL: pd.URL}))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })

	r := report(t)
	for range 100 {
		firing, err := m.Evaluate(context.Background(), r, nil)
		require.NoError(t, err)
		require.Len(t, firing, 1)
		require.NoError(t, m.Flush(etcdtest.Context(t, 10*time.Second)))
	}
	require.NoError(t, m.Flush(etcdtest.Context(t, 10*time.Second)))
	require.Len(t, pd.requests(), 1)
	trigger := pd.decode(t, 0)
	assert.Equal(t, "trigger", trigger["event_action"])

	sw.set(false)
	_, err = m.Evaluate(context.Background(), r, nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(etcdtest.Context(t, 10*time.Second)))
	require.Len(t, pd.requests(), 2)
	resolve := pd.decode(t, 1)
	assert.Equal(t, "resolve", resolve["event_action"])
	assert.Equal(t, trigger["dedup_key"], resolve["dedup_key"])
	assert.Len(t, m.History(), 2)
}

// After the repeat interval (WithDedupWindow, kept for compatibility) a still-firing
// group is notified again, once per interval.
func TestRepeatInterval(t *testing.T) {
	var mu sync.Mutex
	var got []alert.Alert
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithDedupWindow(300*time.Millisecond),
		alert.WithConfig(timing(time.Millisecond, 10*time.Millisecond, 0)),
		alert.WithNotifier("recorder", alert.NotifierFunc(func(_ context.Context, a alert.Alert) error {
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
			return nil
		})))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	r := report(t)
	count := func() int {
		require.NoError(t, m.Flush(context.Background()))
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	// Before the first notification, so that the window, which counts from it, cannot
	// have begun before start however long its delivery takes.
	start := time.Now()
	_, err = m.Evaluate(context.Background(), r, nil)
	require.NoError(t, err)
	require.Equal(t, 1, count())
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := m.Evaluate(context.Background(), r, nil)
		assert.NoError(c, err)
		assert.NoError(c, m.Flush(context.Background()))
		mu.Lock()
		defer mu.Unlock()
		assert.Len(c, got, 2)
	}, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	require.Len(t, got, 2)
	mu.Unlock()
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "not before the window")
	mu.Lock()
	assert.Equal(t, got[0].Fingerprint, got[1].Fingerprint)
	assert.Equal(t, got[0].StartsAt, got[1].StartsAt)
	mu.Unlock()
	assert.Len(t, m.History(), 1, "a repeat is not a transition")
}

// One channel that hangs and one that always fails never delay the others, and the alert
// stays in the history.
func TestFailingChannelDoesNotDelayOthers(t *testing.T) {
	hook := newReceiver(t, http.StatusOK)
	broken := newReceiver(t, http.StatusInternalServerError)
	entered := make(chan struct{}, 10)
	sw := &switchRule{on: true}
	retry := fastRetry()
	retry.Attempts = 3
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithRetry(retry), alert.WithShutdownTimeout(50*time.Millisecond),
		alert.WithConfig(timing(time.Millisecond, time.Hour, time.Hour)),
		alert.WithNotifier("stuck", alert.NotifierFunc(func(ctx context.Context, _ alert.Alert) error {
			entered <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})),
		alert.WithWebhook(alert.WebhookConfig{Name: "broken", URL: broken.URL}),
		alert.WithWebhook(alert.WebhookConfig{URL: hook.URL}),
	)
	require.NoError(t, err)

	_, err = m.Evaluate(context.Background(), report(t), nil)
	require.NoError(t, err)
	<-entered
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ds := deliveriesOf(m, "webhook")
		assert.True(c, len(ds) == 1 && ds[0].Delivered)
	}, 5*time.Second, 5*time.Millisecond, "webhook delivered while stuck hangs")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ds := deliveriesOf(m, "broken")
		assert.True(c, len(ds) == 3 && ds[2].Final)
	}, 5*time.Second, 5*time.Millisecond)
	for _, d := range deliveriesOf(m, "broken") {
		assert.False(t, d.Delivered)
		assert.Contains(t, d.Error, "500")
	}
	assert.Len(t, broken.requests(), 3)
	assert.Empty(t, deliveriesOf(m, "stuck"), "still in flight")
	assert.Len(t, m.History(), 1)

	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	ds := deliveriesOf(m, "stuck")
	require.NotEmpty(t, ds)
	assert.True(t, ds[len(ds)-1].Final)
	assert.False(t, ds[len(ds)-1].Delivered)
	_, err = m.Evaluate(context.Background(), nil, nil)
	assert.ErrorIs(t, err, alert.ErrClosed)
}

// A 4xx other than 429 and a Permanent error are not retried.
func TestPermanentFailuresNotRetried(t *testing.T) {
	bad := newReceiver(t, http.StatusBadRequest)
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithRetry(fastRetry()),
		alert.WithConfig(timing(time.Hour, time.Hour, time.Hour)),
		alert.WithWebhook(alert.WebhookConfig{URL: bad.URL}),
		alert.WithNotifier("permanent", alert.NotifierFunc(func(context.Context, alert.Alert) error {
			return alert.Permanent(errors.New("recipient rejected"))
		})))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	_, err = m.Evaluate(context.Background(), report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(etcdtest.Context(t, 10*time.Second)))
	for _, name := range []string{"webhook", "permanent"} {
		ds := deliveriesOf(m, name)
		require.Len(t, ds, 1, name)
		assert.True(t, ds[0].Final)
		assert.False(t, ds[0].Delivered)
	}
	assert.Len(t, bad.requests(), 1)
}

// Guarantee 4: fill a small backend quota until NOSPACE; the alarm is reported and the
// alert fires; after the alarm is disarmed the alert resolves.
func TestClusterQuotaAlarm(t *testing.T) {
	// Elections only when the test makes them: a leader that steps down under load loses
	// the writes in flight.
	c := etcdtest.NewCluster(t, 3, etcdtest.WithQuota(512*1024), etcdtest.WithElectionTicks(50))
	cli := c.ClusterClient()
	eps := map[string]string{}
	for _, mem := range c.Members {
		eps[mem.Name] = mem.GRPCURL
	}
	ch, err := health.New(cli, health.WithEndpoints(eps))
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	hook := newReceiver(t, http.StatusOK)
	m, err := alert.New(alert.WithWebhook(alert.WebhookConfig{URL: hook.URL}))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })

	check := func() *health.Report {
		r, err := ch.Check(etcdtest.Context(t, 10*time.Second))
		require.NoError(t, err)
		return r
	}
	firing, err := m.Evaluate(context.Background(), check(), nil)
	require.NoError(t, err)
	require.Empty(t, firing, "a fresh cluster raises nothing")

	value := strings.Repeat("v", 64*1024)
	// Until etcd refuses a write for space; a write that times out on a loaded machine is
	// not that, and the next one goes on filling.
	var putErr error
	for i := 0; i < 200 && !errors.Is(putErr, rpctypes.ErrNoSpace); i++ {
		_, putErr = cli.Put(etcdtest.Context(t, 10*time.Second), fmt.Sprintf("/fill/%d", i), value)
	}
	require.ErrorIs(t, putErr, rpctypes.ErrNoSpace)

	r := check()
	require.True(t, r.HasAlarm("NOSPACE"), "%+v", r.Alarms)
	assert.False(t, r.Healthy)
	firing, err = m.Evaluate(context.Background(), r, nil)
	require.NoError(t, err)
	var alarm *alert.Alert
	for i := range firing {
		if firing[i].Name == "EtcdAlarm" {
			alarm = &firing[i]
		}
	}
	require.NotNil(t, alarm, "%+v", firing)
	assert.Equal(t, alert.Critical, alarm.Severity)
	assert.Equal(t, "NOSPACE", alarm.Labels["alarm"])
	require.NoError(t, m.Flush(etcdtest.Context(t, 10*time.Second)))
	var sent []string
	for i := range hook.requests() {
		msg := hook.decode(t, i)
		a := msg["alerts"].([]any)[0].(map[string]any)
		sent = append(sent, fmt.Sprintf("%s %s", a["labels"].(map[string]any)["alertname"], a["status"]))
	}
	assert.Contains(t, sent, "EtcdAlarm firing")

	for _, a := range r.Alarms {
		_, err := cli.AlarmDisarm(etcdtest.Context(t, 10*time.Second), &clientv3.AlarmMember{MemberID: uint64(a.MemberID), Alarm: pb.AlarmType_NOSPACE})
		require.NoError(t, err)
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := ch.Check(etcdtest.Context(t, 10*time.Second))
		if !assert.NoError(c, err) {
			return
		}
		if !assert.False(c, r.HasAlarm("NOSPACE")) {
			// A member that applied the last write after the first check raised its own.
			for _, a := range r.Alarms {
				_, err := cli.AlarmDisarm(etcdtest.Context(t, 10*time.Second), &clientv3.AlarmMember{MemberID: uint64(a.MemberID), Alarm: pb.AlarmType_NOSPACE})
				assert.NoError(c, err)
			}
			return
		}
		_, err = m.Evaluate(context.Background(), r, nil)
		assert.NoError(c, err)
		for _, a := range m.Active() {
			assert.NotEqual(c, "EtcdAlarm", a.Name)
		}
	}, 15*time.Second, 50*time.Millisecond)
	require.NoError(t, m.Flush(etcdtest.Context(t, 10*time.Second)))
	var resolved bool
	for i := range hook.requests() {
		msg := hook.decode(t, i)
		for _, x := range msg["alerts"].([]any) {
			a := x.(map[string]any)
			if a["labels"].(map[string]any)["alertname"] == "EtcdAlarm" && a["status"] == "resolved" {
				resolved = resolved || a["fingerprint"] == alarm.Fingerprint
			}
		}
	}
	assert.True(t, resolved, "the webhook got the resolution of the same alert")
}

// The default rules over a real cluster: a stopped member fires EtcdMembersDown, with
// the constant labels of WithLabels.
func TestClusterDefaultRulesMemberDown(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	eps := map[string]string{}
	for _, mem := range c.Members {
		eps[mem.Name] = mem.GRPCURL
	}
	// Long enough for the members that are up to answer on a loaded machine under -race:
	// one that does not in the last check fires EtcdInsufficientMembers, which the test
	// says does not. A stopped member costs each check the whole timeout.
	ch, err := health.New(c.ClusterClient(), health.WithEndpoints(eps), health.WithTimeout(3*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	now := time.Duration(0)
	m, err := alert.New(alert.WithLabels(map[string]string{"cluster": "test"}),
		alert.WithConfig(alert.Config{Rules: map[string]alert.RuleOverride{"EtcdMembersDown": {For: &now}}}))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })

	down := (c.Leader() + 1) % 3
	c.StopMember(down)
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		r, err := ch.Check(etcdtest.Context(t, 10*time.Second))
		if !assert.NoError(ct, err) {
			return
		}
		firing, err := m.Evaluate(context.Background(), r, nil)
		assert.NoError(ct, err)
		found := false
		for _, a := range firing {
			found = found || (a.Name == "EtcdMembersDown" && a.Labels["member"] == c.Members[down].Name && a.Labels["cluster"] == "test")
		}
		assert.True(ct, found, "EtcdMembersDown for %s", c.Members[down].Name)
	}, 30*time.Second, 50*time.Millisecond)
	for _, a := range m.Active() {
		assert.NotEqual(t, "EtcdInsufficientMembers", a.Name, "quorum holds with one member down")
	}
}

// A rule that panics is reported as an error; the other rules still run.
func TestPanickingRule(t *testing.T) {
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule(), alert.Rule{Name: "Broken", Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding {
		panic("boom")
	}}))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	firing, err := m.Evaluate(context.Background(), report(t), nil)
	assert.ErrorContains(t, err, "boom")
	assert.Len(t, firing, 1)
}

// Invalid thresholds and notifier settings are errors from New.
func TestNewInvalidSettings(t *testing.T) {
	th := func(f func(*alert.Thresholds)) alert.Option {
		t := alert.DefaultThresholds()
		f(&t)
		return alert.WithThresholds(t)
	}
	cases := map[string]struct {
		opt  alert.Option
		want error
	}{
		"empty webhook URL":   {alert.WithWebhook(alert.WebhookConfig{}), alert.ErrInvalidArgument},
		"relative webhook":    {alert.WithWebhook(alert.WebhookConfig{URL: "/hook"}), alert.ErrInvalidArgument},
		"empty slack URL":     {alert.WithSlack(alert.SlackConfig{}), alert.ErrInvalidArgument},
		"short routing key":   {alert.WithPagerDuty(alert.PagerDutyConfig{RoutingKey: "abc"}), alert.ErrInvalidArgument},
		"bad pagerduty URL":   {alert.WithPagerDuty(alert.PagerDutyConfig{RoutingKey: routingKey, URL: "ftp://x"}), alert.ErrInvalidArgument},
		"bad email address":   {alert.WithEmail(alert.EmailConfig{Addr: "smtp:25", From: "not an address", To: []string{"a@b.c"}}), alert.ErrInvalidArgument},
		"bad recipient":       {alert.WithEmail(alert.EmailConfig{Addr: "smtp:25", From: "a@b.c", To: []string{"nobody"}}), alert.ErrInvalidArgument},
		"no recipients":       {alert.WithEmail(alert.EmailConfig{Addr: "smtp:25", From: "a@b.c"}), alert.ErrInvalidArgument},
		"no port":             {alert.WithEmail(alert.EmailConfig{Addr: "smtp", From: "a@b.c", To: []string{"a@b.c"}}), alert.ErrInvalidArgument},
		"half credentials":    {alert.WithEmail(alert.EmailConfig{Addr: "smtp:25", From: "a@b.c", To: []string{"a@b.c"}, Username: "u"}), alert.ErrInvalidArgument},
		"nil console logger":  {alert.WithConsole(nil), alert.ErrInvalidArgument},
		"nil notifier":        {alert.WithNotifier("x", nil), alert.ErrInvalidArgument},
		"zero leader changes": {th(func(t *alert.Thresholds) { t.LeaderChanges = 0 }), alert.ErrInvalidArgument},
		"quota over 1":        {th(func(t *alert.Thresholds) { t.QuotaUsed = 1.5 }), alert.ErrInvalidArgument},
		"fragmentation 1":     {th(func(t *alert.Thresholds) { t.Fragmentation = 1 }), alert.ErrInvalidArgument},
		"negative fsync":      {th(func(t *alert.Thresholds) { t.FsyncP99 = -time.Second }), alert.ErrInvalidArgument},
		"zero thresholds":     {alert.WithThresholds(alert.Thresholds{}), alert.ErrInvalidArgument},
		"zero dedup window":   {alert.WithDedupWindow(0), alert.ErrInvalidArgument},
		"zero attempts":       {alert.WithRetry(alert.Retry{MinBackoff: time.Millisecond, MaxBackoff: time.Second}), alert.ErrInvalidArgument},
		"rule without Eval":   {alert.WithRules(alert.Rule{Name: "x"}), alert.ErrInvalidArgument},
	}
	for name, tc := range cases {
		m, err := alert.New(tc.opt)
		assert.ErrorIs(t, err, tc.want, name)
		assert.Nil(t, m, name)
	}
	_, err := alert.New(alert.WithDedupWindow(time.Minute), alert.WithConfig(timing(0, 0, time.Hour)))
	var fe *alert.FieldError
	require.ErrorAs(t, err, &fe, "two repeat intervals")
	assert.Equal(t, "dedup_window", fe.Field)
	hook := alert.WithWebhook(alert.WebhookConfig{URL: "http://a/hook"})
	_, err = alert.New(hook, hook)
	assert.ErrorIs(t, err, alert.ErrInvalidArgument, "duplicate notifier names")
	sw := &switchRule{}
	_, err = alert.New(alert.WithExtraRules(sw.rule(), sw.rule()))
	assert.ErrorIs(t, err, alert.ErrInvalidArgument, "duplicate rules")
}

func TestSeverityText(t *testing.T) {
	b, err := json.Marshal(struct{ S alert.Severity }{alert.Warning})
	require.NoError(t, err)
	assert.JSONEq(t, `{"S":"warning"}`, string(b))
	var v struct{ S alert.Severity }
	require.NoError(t, json.Unmarshal([]byte(`{"S":"critical"}`), &v))
	assert.Equal(t, alert.Critical, v.S)
	assert.Error(t, json.Unmarshal([]byte(`{"S":"loud"}`), &v))
}
