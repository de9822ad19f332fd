package monitor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// fakeClock is remediation's clock in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fragmented is a rule by the name of the fragmentation alert that finds every member
// fragmented, and a second, made-up one, so that two alerts of it fire whatever the
// database looks like.
func fragmented() alert.Rule {
	return alert.Rule{Name: AlertFragmentation, Severity: alert.Warning, Summary: "fragmented (test)", Needs: alert.NeedsHealth,
		Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
			out := []alert.Finding{{Labels: alert.MemberLabels(0xfeed, "ghost"), Value: 0.2}}
			for _, m := range h.Members {
				out = append(out, alert.Finding{Labels: alert.MemberLabels(uint64(m.Member.ID), m.Name), Value: 0.1})
			}
			return out
		}}
}

// finished waits until c has no operation in flight and returns its operations.
func finished(t *testing.T, s *Service, c *clusterMaint) []MaintenanceOperation {
	t.Helper()
	var ops []MaintenanceOperation
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, running := c.current()
		assert.False(ct, running)
		var err error
		ops, err = s.maint.list(context.Background(), c, 100)
		assert.NoError(ct, err)
	}, 30*time.Second, 10*time.Millisecond)
	return ops
}

// Defragmentation answers the fragmentation alert only inside the maintenance window (a
// fake clock moves in and out of it), once per firing within Retry; a dry run records
// the plan; a cluster without remediation, or with NOSPACE remediation only, does
// nothing.
func TestRemediationDefragmentsInsideTheWindowOnly(t *testing.T) {
	cli := etcdtest.Client(t)
	window := maintenance.MustParseWindow("Sat 02:00-04:00 Europe/Berlin")
	core, logs := observer.New(zap.InfoLevel)
	clusters := []Cluster{{Name: "one", Client: cli}, {Name: "dry", Client: cli}, {Name: "off", Client: cli}, {Name: "nospace", Client: cli},
		{Name: "single", Client: cli}}
	s, err := New(clusters, WithStore(store.NewMemory()), WithLogger(zap.New(core)),
		WithAlertOptions(alert.WithRules(fragmented())),
		WithRemediation("one", Remediation{Defragment: true, Window: window, AllowSingleMember: true}),
		WithRemediation("dry", Remediation{Defragment: true, Window: window, AllowSingleMember: true, DryRun: true}),
		WithRemediation("nospace", Remediation{NoSpace: true}),
		// Without AllowSingleMember, the defragmentation of a one-member cluster fails.
		WithRemediation("single", Remediation{Defragment: true, Window: window}))
	require.NoError(t, err)
	defer s.Close()
	clock := &fakeClock{}
	s.maint.now = clock.now
	ctx := etcdtest.Context(t, 60*time.Second)
	require.NoError(t, s.Refresh(ctx))
	one, dry := s.maint.clusters["one"], s.maint.clusters["dry"]
	var fps []string
	for _, a := range s.alerts.Active() {
		if a.Labels["cluster"] == "one" && a.Name == AlertFragmentation {
			fps = append(fps, a.Fingerprint)
		}
	}
	slices.Sort(fps)
	require.Len(t, fps, 2, "the fragmentation alerts fire: %v", s.alerts.Active())
	fp := fps[0]

	// Wednesday noon: outside the window; nothing starts, and the wait is logged once.
	clock.set(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	for range 3 {
		assert.Equal(t, "outside window", s.maint.remediate(ctx, one))
	}
	assert.Equal(t, 1, logs.FilterMessage("remediation: defragmentation waits for the maintenance window").FilterField(zap.String("cluster", "one")).Len())
	assert.Equal(t, "off", s.maint.remediate(ctx, s.maint.clusters["off"]))
	// A silence holds remediation, even inside the window.
	m, err := alert.ParseMatcher(`cluster="one"`)
	require.NoError(t, err)
	sil, err := s.alerts.CreateSilence(ctx, alert.Silence{Matchers: alert.Matchers{m}, EndsAt: time.Now().Add(time.Hour),
		CreatedBy: "test", Comment: "hands off"})
	require.NoError(t, err)
	clock.set(time.Date(2026, 11, 28, 1, 30, 0, 0, time.UTC))
	assert.Equal(t, "nothing to do", s.maint.remediate(ctx, one))
	require.NoError(t, s.alerts.ExpireSilence(ctx, sil.ID))
	clock.set(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	assert.Equal(t, "nothing to do", s.maint.remediate(ctx, s.maint.clusters["nospace"]), "defragmentation is not enabled there")
	for _, c := range s.maint.order {
		ops, err := s.maint.list(ctx, c, 100)
		require.NoError(t, err)
		assert.Empty(t, ops, "cluster %s: nothing happens outside the window or without remediation", c.name)
	}

	// Saturday 02:30 in Berlin: inside.
	clock.set(time.Date(2026, 11, 28, 1, 30, 0, 0, time.UTC))
	assert.Equal(t, "started defragment", s.maint.remediate(ctx, one))
	ops := finished(t, s, one)
	require.Len(t, ops, 1)
	op := ops[0]
	assert.Equal(t, OpSucceeded, op.State, op.Error)
	assert.Equal(t, OpDefragment, op.Kind)
	assert.Equal(t, TriggerRemediation, op.Trigger)
	assert.Equal(t, fp, op.Alert)
	assert.Equal(t, fps, op.Alerts, "one defragmentation answers both members' alerts")
	assert.Equal(t, AlertFragmentation, op.AlertName)
	assert.False(t, op.DryRun)
	var rep maintenance.DefragmentReport
	require.NoError(t, json.Unmarshal(op.Report, &rep))
	require.Len(t, rep.Members, 1)
	assert.Equal(t, maintenance.StateDone, rep.Members[0].State)
	assert.Equal(t, 1, logs.FilterMessage("remediation: started defragment").FilterField(zap.String("alert", fp)).Len(), "the action is logged with its alert")

	// The same firing is not acted on again within Retry, inside the window or not.
	clock.set(time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC))
	assert.Equal(t, "acted already", s.maint.remediate(ctx, one))
	clock.set(time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC))
	assert.Equal(t, "outside window", s.maint.remediate(ctx, one))
	// A week later, past Retry, inside the window again.
	clock.set(time.Date(2026, 12, 5, 1, 30, 0, 0, time.UTC))
	assert.Equal(t, "started defragment", s.maint.remediate(ctx, one))
	ops = finished(t, s, one)
	assert.Len(t, ops, 2)

	// A dry run records the plan and defragments nothing.
	assert.Equal(t, "started defragment", s.maint.remediate(ctx, dry))
	ops = finished(t, s, dry)
	require.Len(t, ops, 1)
	assert.True(t, ops[0].DryRun)
	assert.Equal(t, OpSucceeded, ops[0].State, ops[0].Error)
	require.NoError(t, json.Unmarshal(ops[0].Report, &rep))
	assert.True(t, rep.DryRun)
	require.NotEmpty(t, rep.Plan)
	assert.Equal(t, "defragment", rep.Plan[0].Action)
	assert.Equal(t, maintenance.StatePending, rep.Members[0].State)

	// A failed action is retried after RetryFailed, not Retry.
	single := s.maint.clusters["single"]
	start := time.Date(2026, 11, 28, 1, 30, 0, 0, time.UTC)
	clock.set(start)
	assert.Equal(t, "started defragment", s.maint.remediate(ctx, single))
	ops = finished(t, s, single)
	require.Len(t, ops, 1)
	assert.Equal(t, OpFailed, ops[0].State)
	assert.Contains(t, ops[0].Error, "would cost quorum")
	clock.set(start.Add(RetryFailed - time.Second))
	assert.Equal(t, "acted already", s.maint.remediate(ctx, single))
	clock.set(start.Add(RetryFailed))
	assert.Equal(t, "started defragment", s.maint.remediate(ctx, single))
	assert.Len(t, finished(t, s, single), 2)
}

// NOSPACE on a 1 MiB quota, with the Service running: in dry run, remediation records
// compact + defragment + disarm as a plan against the alarm's alert and the cluster stays
// read-only; for real, it takes those steps and writes come back. The operation is found
// from the alert through the API.
func TestRemediationRecoversFromNoSpace(t *testing.T) {
	const quota = 1 << 20
	c := etcdtest.NewCluster(t, 3, etcdtest.WithQuota(quota), etcdtest.WithElectionTicks(50))
	cli := c.ClusterClient()
	endpoints := map[string]string{}
	for _, m := range c.Members {
		endpoints[m.Name] = m.GRPCURL
	}
	ctx := etcdtest.Context(t, 240*time.Second)
	value := strings.Repeat("v", 32<<10)
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		_, err = cli.Put(ctx, "/fill", value) // old revisions fill the quota
	}
	require.ErrorIs(t, err, rpctypes.ErrNoSpace)

	st := store.NewMemory()
	const interval = 200 * time.Millisecond
	serve := func(rem Remediation) (*Service, string, func()) {
		core, _ := observer.New(zap.InfoLevel)
		s, err := New([]Cluster{{Name: "main", Client: cli,
			Health:  []health.Option{health.WithEndpoints(endpoints), health.WithTimeout(3 * time.Second)},
			Metrics: []metrics.Option{metrics.WithEndpoints(endpoints), metrics.WithTimeout(3 * time.Second), metrics.WithSamples(1)}}},
			WithStore(st), WithHealthInterval(interval), WithMetricsInterval(interval), WithLogger(zap.New(core)),
			WithRemediation("main", rem))
		require.NoError(t, err)
		srv := httptest.NewServer(s)
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		return s, srv.URL, func() {
			srv.Close()
			cancel()
			assert.NoError(t, <-done)
			assert.NoError(t, s.Close())
		}
	}
	nospaceAlert := func(s *Service) string {
		for _, a := range s.alerts.Active() {
			if a.Name == AlertAlarm && a.Labels["alarm"] == "NOSPACE" {
				return a.Fingerprint
			}
		}
		return ""
	}
	// recovered returns the first operation (oldest) that succeeded and found the alarm.
	// Remediation acts again after Retry (short here), so an attempt that a loaded
	// machine made fail (a health check timing out) is retried; later ones find no alarm.
	recovered := func(ct assert.TestingT, dryRun bool) (store.MaintenanceOp, bool) {
		recs, err := st.MaintenanceOps(context.Background(), store.MaintenanceQuery{Cluster: "main"})
		assert.NoError(ct, err)
		for i := len(recs) - 1; i >= 0; i-- {
			r := recs[i]
			var rep maintenance.NoSpaceReport
			if r.DryRun == dryRun && r.State == OpSucceeded && json.Unmarshal(storedOperation(r).Report, &rep) == nil && len(rep.Alarms) > 0 {
				return r, true
			}
		}
		return store.MaintenanceOp{}, false
	}

	// Dry run: the plan, against the alert.
	s, _, stop := serve(Remediation{NoSpace: true, KeepRevisions: 1, DryRun: true, Retry: time.Second})
	var dry store.MaintenanceOp
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var ok bool
		dry, ok = recovered(ct, true)
		assert.True(ct, ok)
	}, 100*time.Second, 20*time.Millisecond)
	fp := dry.Alert
	stop()
	assert.Equal(t, OpRecoverNoSpace, dry.Kind)
	assert.NotEmpty(t, fp)
	assert.Equal(t, AlertAlarm, storedOperation(dry).AlertName)
	var plan maintenance.NoSpaceReport
	require.NoError(t, json.Unmarshal([]byte(storedOperation(dry).Report), &plan))
	var actions []string
	for _, step := range plan.Plan {
		actions = append(actions, step.Action)
	}
	require.NotEmpty(t, plan.Alarms)
	want := []string{"compact", "defragment", "defragment", "defragment"}
	for range plan.Alarms {
		want = append(want, "disarm") // one per member that raised it
	}
	assert.Equal(t, want, actions)
	require.EventuallyWithT(t, func(ct *assert.CollectT) { // retried while a loaded etcd times out
		_, err := cli.Put(ctx, "/after", "v")
		assert.ErrorIs(ct, err, rpctypes.ErrNoSpace, "a dry run changes nothing")
	}, 30*time.Second, 100*time.Millisecond)

	// For real.
	s, url, stop := serve(Remediation{NoSpace: true, KeepRevisions: 1, Retry: time.Second})
	defer stop()
	var done store.MaintenanceOp
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var ok bool
		done, ok = recovered(ct, false)
		assert.True(ct, ok)
	}, 100*time.Second, 20*time.Millisecond)
	assert.Equal(t, fp, done.Alert, "the same alert: its fingerprint is its name and labels")
	var rep maintenance.NoSpaceReport
	require.NoError(t, json.Unmarshal([]byte(storedOperation(done).Report), &rep))
	assert.Positive(t, rep.Compact.CompactRevision)
	require.Len(t, rep.Defragment.Members, 3)
	for _, m := range rep.Defragment.Members {
		assert.Equal(t, maintenance.StateDone, m.State, m.Name)
	}
	assert.Len(t, rep.Disarm.Disarmed, len(rep.Alarms))
	t.Logf("NOSPACE recovered by remediation in %v (compact to %d, %d bytes freed, %d alarm(s) disarmed)",
		done.Finished.Sub(done.Started).Round(time.Millisecond), rep.Compact.CompactRevision, rep.Defragment.Freed(), len(rep.Disarm.Disarmed))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, err := cli.Put(ctx, "/after", "v")
		assert.NoError(ct, err, "writes are back")
	}, 30*time.Second, 100*time.Millisecond)
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Empty(ct, nospaceAlert(s)) }, 30*time.Second, 20*time.Millisecond,
		"the alert resolves")

	// From the alert to what was done about it.
	resp, err := http.Get(url + "/api/v1/clusters/main/maintenance?alert=" + fp)
	require.NoError(t, err)
	defer resp.Body.Close()
	var list MaintenanceResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	var ids []string
	for _, op := range list.Operations {
		ids = append(ids, op.ID)
		assert.Equal(t, TriggerRemediation, op.Trigger)
	}
	assert.Contains(t, ids, done.ID)
	assert.Contains(t, ids, dry.ID)
}
