package monitor_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

// switches turn test conditions on and off per cluster: a rule named TestCondition
// fires for each cluster whose switch is on, and TestSource (which inhibits
// TestCondition of its cluster) likewise.
type switches struct{ condition, source sync.Map }

func (sw *switches) rules() []alert.Rule {
	rule := func(name string, m *sync.Map) alert.Rule {
		return alert.Rule{Name: name, Severity: alert.Warning, Summary: name + " holds",
			Check: func(in *alert.Input) []alert.Finding {
				if v, ok := m.Load(in.Cluster); ok && v.(bool) {
					return []alert.Finding{{Description: name + " in " + in.Cluster}}
				}
				return nil
			}}
	}
	return []alert.Rule{rule("TestCondition", &sw.condition), rule("TestSource", &sw.source)}
}

// recorder is a receiver that records the notifications it gets.
type recorder struct {
	mu sync.Mutex
	ns []alert.Notification
}

func (r *recorder) Send(_ context.Context, n alert.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ns = append(r.ns, n)
	return nil
}

// notified counts the notifications with a firing alert of this name and cluster.
func (r *recorder) notified(name, cluster string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, no := range r.ns {
		for _, a := range no.Firing() {
			if a.Name == name && a.Labels["cluster"] == cluster {
				n++
				break
			}
		}
	}
	return n
}

func findAlert(alerts []monitor.ClusterAlert, name, cluster string) (monitor.ClusterAlert, bool) {
	for _, a := range alerts {
		if a.Name == name && a.Cluster == cluster {
			return a, true
		}
	}
	return monitor.ClusterAlert{}, false
}

// Silences over the API mute exactly what they match; inhibited alerts are listed as
// such; the notification log and the history (merged across clusters by time) are
// served.
func TestSilencesInhibitionsAndNotifications(t *testing.T) {
	cli := etcdtest.Client(t)
	sw := &switches{}
	rec := &recorder{}
	_, url := service(t, []monitor.Cluster{{Name: "east", Client: cli}, {Name: "west", Client: cli}},
		monitor.WithHealthInterval(50*time.Millisecond), monitor.WithMetricsInterval(time.Hour),
		monitor.WithAlertOptions(alert.WithExtraRules(sw.rules()...), alert.WithReceiver("rec", rec, true),
			alert.WithConfig(alert.Config{
				Route: &alert.Route{Receiver: "rec", GroupWait: 20 * time.Millisecond, GroupInterval: 50 * time.Millisecond, RepeatInterval: time.Hour},
				InhibitRules: []alert.InhibitRule{{SourceMatchers: alert.MustParseMatchers(`alertname="TestSource"`),
					TargetMatchers: alert.MustParseMatchers(`alertname="TestCondition"`), Equal: []string{"cluster"}}},
			})))
	const wait = 10 * time.Second

	// A silence of TestCondition in east.
	var sil alert.Silence
	body := fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"TestCondition","isRegex":false,"isEqual":true},
		{"name":"cluster","value":"east","isRegex":false,"isEqual":true}],
		"endsAt":%q,"createdBy":"test","comment":"maintenance of east"}`, time.Now().Add(time.Hour).Format(time.RFC3339))
	require.Equal(t, http.StatusOK, call(t, "POST", url+"/api/v1/silences", body, &sil))
	require.NotEmpty(t, sil.ID)
	assert.Equal(t, alert.SilenceActive, sil.Status.State)

	sw.condition.Store("east", true)
	sw.condition.Store("west", true)
	var alerts monitor.AlertsResponse
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(ct, url+"/api/v1/alerts", &alerts))
		e, ok := findAlert(alerts.Alerts, "TestCondition", "east")
		if assert.True(ct, ok) {
			assert.Equal(ct, alert.Firing, e.State)
			assert.Equal(ct, []string{sil.ID}, e.Status.SilencedBy, "east is silenced")
		}
		w, ok := findAlert(alerts.Alerts, "TestCondition", "west")
		if assert.True(ct, ok) {
			assert.Equal(ct, alert.Firing, w.State)
			assert.Empty(ct, w.Status.SilencedBy, "west is not")
		}
		assert.Equal(ct, 1, rec.notified("TestCondition", "west"))
	}, wait, 20*time.Millisecond)
	assert.Zero(t, rec.notified("TestCondition", "east"), "the silence mutes east")

	var notes monitor.NotificationsResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/alerts/notifications?receiver=rec&limit=10", &notes))
	require.NotEmpty(t, notes.Notifications)
	assert.Equal(t, "rec", notes.Notifications[0].Receiver)

	// An inhibiting alert in west: its TestCondition is listed as inhibited.
	sw.source.Store("west", true)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(ct, url+"/api/v1/alerts?cluster=west&state=firing", &alerts))
		w, ok := findAlert(alerts.Alerts, "TestCondition", "west")
		if assert.True(ct, ok) {
			assert.Len(ct, w.Status.InhibitedBy, 1)
		}
		_, ok = findAlert(alerts.Alerts, "TestCondition", "east")
		assert.False(ct, ok, "?cluster=west lists west only")
	}, wait, 20*time.Millisecond)

	// Listed, fetched, expired: east is notified once the silence is gone.
	var list monitor.SilencesResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/silences", &list))
	require.Len(t, list.Silences, 1)
	var one alert.Silence
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/silences/"+sil.ID, &one))
	assert.Equal(t, "maintenance of east", one.Comment)
	var expired alert.Silence
	require.Equal(t, http.StatusOK, call(t, "DELETE", url+"/api/v1/silences/"+sil.ID, "", &expired))
	assert.Equal(t, alert.SilenceExpired, expired.Status.State)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 1, rec.notified("TestCondition", "east"))
	}, wait, 20*time.Millisecond)

	// History across clusters, merged by time (the time of the data each transition was
	// found in): ?limit=1 is the newest transition of all clusters, whichever it is.
	sw.condition.Store("west", false)
	sw.condition.Store("east", false)
	var hist monitor.AlertsResponse
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(ct, url+"/api/v1/alerts/history", &hist))
		resolved := map[string]bool{}
		for _, a := range hist.Alerts {
			if a.Name == "TestCondition" && a.State == alert.Resolved {
				resolved[a.Cluster] = true
			}
		}
		assert.Equal(ct, map[string]bool{"east": true, "west": true}, resolved)
	}, wait, 20*time.Millisecond)
	clusters := map[string]bool{}
	for i, a := range hist.Alerts {
		clusters[a.Cluster] = true
		if i > 0 {
			assert.False(t, at(a).Before(at(hist.Alerts[i-1])), "oldest first: %v", hist.Alerts)
		}
	}
	assert.Len(t, clusters, 2, "both clusters' transitions in one list")
	var newest monitor.AlertsResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/alerts/history?limit=1", &newest))
	require.Len(t, newest.Alerts, 1)
	assert.Equal(t, hist.Alerts[len(hist.Alerts)-1].Fingerprint, newest.Alerts[0].Fingerprint, "the newest of all clusters")
	assert.Equal(t, hist.Alerts[len(hist.Alerts)-1].State, newest.Alerts[0].State)
}

func at(a monitor.ClusterAlert) time.Time {
	switch a.State {
	case alert.Resolved:
		return a.EndsAt
	case alert.Firing:
		return a.StartsAt
	}
	return a.ActiveAt
}

// Bad silences get a 400 naming the field; unknown IDs a 404; nothing is stored.
func TestSilenceBadInput(t *testing.T) {
	_, url := service(t, []monitor.Cluster{{Name: "a", Client: etcdtest.Client(t)}}, monitor.WithHealthInterval(time.Hour))
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).Format(time.RFC3339)
	ok := `"createdBy":"me","comment":"why"`
	cases := []struct {
		body    string
		mention string
	}{
		{`{"matchers":[],"endsAt":"` + future + `",` + ok + `}`, "matchers"},
		{`{"endsAt":"` + future + `",` + ok + `}`, "matchers"},
		{`{"matchers":["alertname=~\"(\""],"endsAt":"` + future + `",` + ok + `}`, "matchers[0]"},
		{`{"matchers":["alertname=X"],` + ok + `}`, "endsAt"},
		{`{"matchers":["alertname=X"],"endsAt":"` + past + `",` + ok + `}`, "endsAt"},
		{`{"matchers":["alertname=X"],"endsAt":"` + future + `","comment":"why"}`, "createdBy"},
		{`{"matchers":["alertname=X"],"endsAt":"` + future + `","createdBy":"me"}`, "comment"},
		{`{"matchers":["alertname=X"],"endsAt":"` + future + `",` + ok + `,"extra":1}`, "extra"},
		{`{"matchers":["alertname=X"],"endsAt":"soon",` + ok + `}`, "endsAt"},
		{`{"matchers":`, "malformed"},
		{`{"matchers":["alertname=X"],"endsAt":"` + future + `",` + ok + `,"status":{"state":"active"}}`, "status"},
		{`{"id":"nope","matchers":["alertname=X"],"endsAt":"` + future + `",` + ok + `}`, "nope"},
	}
	for _, c := range cases {
		var e monitor.ErrorResponse
		status := call(t, "POST", url+"/api/v1/silences", c.body, &e)
		if strings.Contains(c.body, `"id":"nope"`) {
			assert.Equal(t, http.StatusNotFound, status, c.body)
		} else {
			assert.Equal(t, http.StatusBadRequest, status, "%s: %+v", c.body, e)
		}
		assert.Contains(t, e.Error, c.mention, c.body)
	}
	var list monitor.SilencesResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/silences", &list))
	assert.Empty(t, list.Silences, "nothing stored")

	var e monitor.ErrorResponse
	assert.Equal(t, http.StatusNotFound, call(t, "DELETE", url+"/api/v1/silences/nope", "", &e))
	assert.Equal(t, http.StatusNotFound, get(t, url+"/api/v1/silences/nope", &e))
	assert.Equal(t, http.StatusMethodNotAllowed, call(t, "PUT", url+"/api/v1/silences", "{}", &e))
	assert.Equal(t, http.StatusBadRequest, get(t, url+"/api/v1/silences?x=1", &e))
	assert.Equal(t, http.StatusBadRequest, get(t, url+"/api/v1/alerts?state=resolved", &e))
	assert.Contains(t, e.Error, "state")
}
