package monitor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// resolved counts the notifications with a resolved alert of this name and cluster.
func (r *recorder) resolved(name, cluster string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, no := range r.ns {
		for _, a := range no.Alerts {
			if a.Name == name && a.Labels["cluster"] == cluster && a.State == alert.Resolved {
				n++
				break
			}
		}
	}
	return n
}

// Two replicas on one store: a standby evaluates and sends nothing and serves alerts
// from the store; the active one's term notifies; when the term passes to the other
// replica, it does not re-send the firing notification and does send the resolve.
func TestStandbyAndTakeover(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	cli := etcdtest.Client(t)
	sw := &switches{}
	replica := func(rec *recorder) (*monitor.Service, string) {
		return service(t, []monitor.Cluster{{Name: "main", Client: cli}}, monitor.WithStore(st), monitor.WithStandby(),
			monitor.WithHealthInterval(50*time.Millisecond), monitor.WithMetricsInterval(time.Hour),
			monitor.WithAlertOptions(alert.WithExtraRules(sw.rules()...), alert.WithReceiver("rec", rec, true),
				alert.WithConfig(alert.Config{Route: &alert.Route{Receiver: "rec", GroupWait: 20 * time.Millisecond,
					GroupInterval: 50 * time.Millisecond, RepeatInterval: time.Hour}})))
	}
	recA, recB := &recorder{}, &recorder{}
	a, urlA := replica(recA)
	b, urlB := replica(recB)
	sw.condition.Store("main", true)
	const wait = 10 * time.Second

	// Standbys: nothing evaluated, nothing sent, silences refused.
	var alerts monitor.AlertsResponse
	require.Equal(t, http.StatusOK, get(t, urlA+"/api/v1/alerts", &alerts))
	assert.Empty(t, alerts.Alerts)
	body := fmt.Sprintf(`{"matchers":[{"name":"cluster","value":"main","isRegex":false}],"endsAt":%q,"createdBy":"t","comment":"c"}`,
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	var e monitor.ErrorResponse
	assert.Equal(t, http.StatusServiceUnavailable, call(t, "POST", urlB+"/api/v1/silences", body, &e))
	assert.Contains(t, e.Error, "standby")
	assert.ErrorIs(t, b.RunAlerts(context.Background(), nil), monitor.ErrInvalidArgument)

	// A's term: it notifies; B, a standby, lists the alert from the store.
	ctxA, endA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.RunAlerts(ctxA, st) }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 1, recA.notified("TestCondition", "main"))
	}, wait, 10*time.Millisecond)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(ct, urlB+"/api/v1/alerts?state=firing", &alerts))
		_, ok := findAlert(alerts.Alerts, "TestCondition", "main")
		assert.True(ct, ok, "the standby reads the active replica's alerts from the store")
	}, wait, 20*time.Millisecond)
	assert.Equal(t, 1.0, firingOnMetrics(t, urlA, "main"), "the active replica exports the firing alert")
	assert.Zero(t, firingOnMetrics(t, urlB, "main"), "a standby exports none, so replicas do not double count")
	endA()
	require.NoError(t, <-doneA)

	// B's term: the alert still fires and was notified by A, so B sends no firing
	// notification; when it resolves, B sends the resolve.
	ctxB, endB := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- b.RunAlerts(ctxB, st) }()
	defer func() {
		endB()
		require.NoError(t, <-doneB)
	}()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, http.StatusOK, get(ct, urlB+"/api/v1/alerts?state=firing", &alerts))
		_, ok := findAlert(alerts.Alerts, "TestCondition", "main")
		assert.True(ct, ok, "B's own engine has the alert")
	}, wait, 20*time.Millisecond)
	sw.condition.Store("main", false)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 1, recB.resolved("TestCondition", "main"), "the resolve is not lost")
	}, wait, 10*time.Millisecond)
	assert.Zero(t, recB.notified("TestCondition", "main"), "no duplicate of A's firing notification")
	assert.Zero(t, recA.resolved("TestCondition", "main"), "A, out of its term, sends nothing")
	var created alert.Silence
	assert.Equal(t, http.StatusOK, call(t, "POST", urlB+"/api/v1/silences", body, &created), "the active replica takes silences")
}

// A standby's view of the store loads an alert whose resolve is still due (the active
// replica's to send): it lists the store's alerts instead of failing.
func TestStandbyViewWithAResolveDue(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	now := time.Now().UTC()
	data := fmt.Sprintf(`{"alert":{"fingerprint":"f1","name":"TestCondition","severity":"warning","state":"resolved",
		"labels":{"alertname":"TestCondition","cluster":"main"},"summary":"s","value":1,"activeAt":%q,"startsAt":%q,"endsAt":%q,
		"status":{"state":"resolved","silencedBy":[],"inhibitedBy":[]}},"rule":"TestCondition","lastTrue":%q}`,
		now.Add(-time.Minute).Format(time.RFC3339Nano), now.Add(-time.Minute).Format(time.RFC3339Nano), now.Format(time.RFC3339Nano),
		now.Add(-time.Second).Format(time.RFC3339Nano))
	require.NoError(t, st.PutAlerts(context.Background(), []store.Alert{{Fingerprint: "f1", Cluster: "main", State: "resolved",
		ActiveAt: now.Add(-time.Minute), FiredAt: now.Add(-time.Minute), Data: []byte(data)}}, nil))
	svc, err := monitor.New([]monitor.Cluster{{Name: "main", Client: etcdtest.Client(t)}}, monitor.WithStore(st), monitor.WithStandby())
	require.NoError(t, err)
	defer svc.Close()
	srv := httptest.NewServer(svc)
	defer srv.Close()
	var alerts monitor.AlertsResponse
	assert.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/alerts", &alerts))
	var sils monitor.SilencesResponse
	assert.Equal(t, http.StatusOK, get(t, srv.URL+"/api/v1/silences", &sils))
	recs, err := st.Alerts(context.Background())
	require.NoError(t, err)
	assert.Len(t, recs, 1, "the view changed nothing in the store")
}

// firingOnMetrics sums etcd_monitor_alerts_firing of cluster on url's /metrics.
func firingOnMetrics(t *testing.T, url, cluster string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var sum float64
	prefix := `etcd_monitor_alerts_firing{cluster="` + cluster + `",`
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
			require.NoError(t, err)
			sum += v
		}
	}
	return sum
}

// stallingStore is a memory store whose alert writes hang, while stall is set, until
// their context ends, as a PostgreSQL write does when PostgreSQL stalls.
type stallingStore struct {
	*store.Memory
	stall   atomic.Bool
	stuck   atomic.Int32 // writes hanging now
	cancels atomic.Int32 // writes that ended because their context did
}

func (s *stallingStore) PutAlerts(ctx context.Context, put []store.Alert, del []string) error {
	if s.stall.Load() {
		s.stuck.Add(1)
		defer s.stuck.Add(-1)
		<-ctx.Done()
		s.cancels.Add(1)
		return context.Cause(ctx)
	}
	return s.Memory.PutAlerts(ctx, put, del)
}

// A leased term whose evaluation hangs in a store write and whose receiver keeps
// failing (and retrying) ends when its lease does, without its ctx: the write is
// cancelled with the lease's cause, the engine closes and its sends stop.
func TestRunAlertsLeasedEndsWithTheLease(t *testing.T) {
	st := &stallingStore{Memory: store.NewMemory()}
	defer st.Close()
	var sends atomic.Int32
	var n atomic.Int32
	svc, _ := service(t, []monitor.Cluster{{Name: "main", Client: etcdtest.Client(t)}}, monitor.WithStore(st), monitor.WithStandby(),
		monitor.WithHealthInterval(20*time.Millisecond), monitor.WithMetricsInterval(time.Hour),
		monitor.WithAlertOptions(
			alert.WithRetry(alert.Retry{Attempts: 1 << 20, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}),
			alert.WithReceiver("pager", alert.SenderFunc(func(context.Context, alert.Notification) error {
				sends.Add(1)
				return fmt.Errorf("the pager keeps failing")
			}), true),
			alert.WithConfig(alert.Config{Route: &alert.Route{Receiver: "pager", GroupWait: time.Millisecond,
				GroupInterval: 10 * time.Millisecond, RepeatInterval: time.Hour}}),
			alert.WithRules(alert.Rule{Name: "TestChurn", Severity: alert.Critical,
				// A new alert at every evaluation: every evaluation writes the store.
				Check: func(*alert.Input) []alert.Finding {
					return []alert.Finding{{Value: 1, Labels: map[string]string{"n": strconv.Itoa(int(n.Add(1)))}}}
				}})))
	assert.ErrorIs(t, svc.RunAlertsLeased(context.Background(), nil, st), monitor.ErrInvalidArgument)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, endLease := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.RunAlertsLeased(ctx, lease, st) }()
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Greater(c, sends.Load(), int32(5)) }, 10*time.Second, 5*time.Millisecond)
	st.stall.Store(true)
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Positive(c, st.stuck.Load()) }, 10*time.Second, 5*time.Millisecond)
	errLease := fmt.Errorf("test: the lease ran out")
	endLease(errLease)
	var err error
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		select {
		case err = <-done:
		default:
			assert.Fail(c, "the term still runs")
		}
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, err)
	assert.Zero(t, st.stuck.Load(), "no write hangs")
	assert.Positive(t, st.cancels.Load(), "the hanging write was cancelled")
	after := sends.Load()
	// The engine is closed: nothing is sent any more (a retry was due every few ms).
	assert.Never(t, func() bool { return sends.Load() != after }, 200*time.Millisecond, 10*time.Millisecond)
	assert.NoError(t, ctx.Err(), "the term's ctx never ended")

	// A term whose lease ended before it started does not start.
	assert.ErrorIs(t, svc.RunAlertsLeased(ctx, lease, st), errLease)
}
