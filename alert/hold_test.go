package alert_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// Snapshot rules at their thresholds, with For.
func TestRuleSnapshotThresholds(t *testing.T) {
	th := alert.DefaultThresholds()
	cases := []struct {
		rule string
		bad  func(*metrics.MemberMetrics)
		good func(*metrics.MemberMetrics)
		for_ time.Duration
	}{
		{"EtcdDatabaseQuotaLowSpace", func(m *metrics.MemberMetrics) { m.DB.Size, m.DB.InUse = 1990<<20, 1990<<20 },
			func(m *metrics.MemberMetrics) { m.DB.Size, m.DB.InUse = 100<<20, 90<<20 }, 10 * time.Minute},
		{"EtcdDatabaseHighFragmentationRatio", func(m *metrics.MemberMetrics) { m.DB.Size, m.DB.InUse = 1000<<20, 200<<20 },
			func(m *metrics.MemberMetrics) { m.DB.Size, m.DB.InUse = 300<<20, 200<<20 }, 10 * time.Minute},
		{"EtcdHighRequestLatency", func(m *metrics.MemberMetrics) { m.Latency.P99 = 400 * time.Millisecond },
			func(m *metrics.MemberMetrics) { m.Latency.P99 = 5 * time.Millisecond }, 10 * time.Minute},
		{"EtcdDiskSpaceLow", func(m *metrics.MemberMetrics) {
			m.Disk = metrics.Disk{Exposed: true, Available: 5 << 30, Size: 100 << 30}
		},
			func(m *metrics.MemberMetrics) {
				m.Disk = metrics.Disk{Exposed: true, Available: 50 << 30, Size: 100 << 30}
			}, 10 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			md := newModel(2)
			key := tc.rule + "/m2"
			both := func(f func(*metrics.MemberMetrics)) func(int, *metrics.MemberMetrics) {
				return func(i int, m *metrics.MemberMetrics) {
					if i == 1 {
						f(m)
					}
				}
			}
			var steps []step
			steps = append(steps, step{s: md.step(0, both(tc.good)), want: map[string]alert.State{key: none}})
			n := int(tc.for_ / time.Minute)
			for i := range n + 2 {
				want := pending
				if i >= n {
					want = firing
				}
				steps = append(steps, step{s: md.step(time.Minute, both(tc.bad)), want: map[string]alert.State{key: want, tc.rule + "/m1": none}})
			}
			steps = append(steps, step{s: md.step(time.Minute, both(tc.good)), want: map[string]alert.State{key: none}})
			replay(t, rulesNamed(t, th, tc.rule), steps)
		})
	}
	// A member that does not expose its filesystem raises nothing.
	md := newModel(1)
	replay(t, rulesNamed(t, th, "EtcdDiskSpaceLow"), []step{
		{s: md.step(0, nil), want: map[string]alert.State{"EtcdDiskSpaceLow/m1": none}},
		{s: md.step(time.Hour, nil), want: map[string]alert.State{"EtcdDiskSpaceLow/m1": none}},
	})
}

// A failed /metrics scrape zeroes every scraped field. The rules over them hold their
// alerts (a zero fsync p99 must not resolve a firing fsync alert, nor close its
// PagerDuty incident), and the failed scrape itself alerts after 5 m.
func TestRuleMissingInputHoldsAndScrapeFailureAlerts(t *testing.T) {
	th := alert.DefaultThresholds()
	rules := append(rulesNamed(t, th, "EtcdMetricsUnavailable", "EtcdDatabaseQuotaLowSpace"), warnings(rulesNamed(t, th, "EtcdHighFsyncDurations"))...)
	md := newModel(1)
	slow := func(_ int, m *metrics.MemberMetrics) {
		observe(&m.WALFsync, 1000, 0.7)
		m.DB.Size, m.DB.InUse = 1990<<20, 1990<<20
	}
	want := func(fsync, quota, unavailable alert.State) map[string]alert.State {
		return map[string]alert.State{"EtcdHighFsyncDurations/m1": fsync, "EtcdDatabaseQuotaLowSpace/m1": quota, "EtcdMetricsUnavailable/m1": unavailable}
	}
	steps := []step{{s: md.step(0, slow), want: want(none, pending, none)}}
	for range 11 {
		steps = append(steps, step{s: md.step(time.Minute, slow)})
	}
	steps[len(steps)-1].want = want(firing, firing, none)
	for i := range 7 { // the scrape fails for 7 minutes
		unavailable := pending
		if i >= 5 {
			unavailable = firing
		}
		steps = append(steps, step{s: md.step(time.Minute, func(_ int, m *metrics.MemberMetrics) { m.Scraped = false }),
			want: want(firing, firing, unavailable)})
	}
	// Scraped again, healthy: everything resolves.
	steps = append(steps, step{s: md.step(time.Minute, func(_ int, m *metrics.MemberMetrics) {
		m.Scraped = true
		m.DB.Size, m.DB.InUse = 100<<20, 90<<20
	}), want: want(firing, none, none)}) // fsync's window still holds slow ones
	for range 6 {
		steps = append(steps, step{s: md.step(time.Minute, func(_ int, m *metrics.MemberMetrics) { observe(&m.WALFsync, 1000, 0.002) })})
	}
	steps[len(steps)-1].want = want(none, none, none)
	replay(t, rules, steps)
}

// A rule that panics keeps its alerts firing (no resolve is sent); the other rules
// still run and the panic is reported.
func TestPanickingRuleHoldsItsAlerts(t *testing.T) {
	var panicNow bool
	flaky := alert.Rule{Name: "Flaky", Severity: alert.Warning, Summary: "flaky",
		Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
			if panicNow {
				panic("boom")
			}
			return []alert.Finding{{Labels: alert.MemberLabels(1, "m1")}}
		}}
	other := alert.Rule{Name: "Other", Severity: alert.Warning, Summary: "other",
		Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding { return []alert.Finding{{}} }}
	rec := &sink{}
	m, err := alert.New(alert.WithRules(flaky, other), alert.WithReceiver("rec", rec, true),
		alert.WithConfig(timing(time.Millisecond, time.Millisecond, time.Hour)))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	_, err = m.EvaluateCluster(ctx, "c1", three(t0), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	panicNow = true
	for i := range 3 {
		_, err = m.EvaluateCluster(ctx, "c1", three(t0.Add(time.Duration(i+1)*time.Minute)), nil)
		assert.ErrorContains(t, err, "boom")
	}
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, firing, stateOf(m, "Flaky", "m1"))
	assert.Equal(t, firing, stateOf(m, "Other", ""))
	for _, n := range rec.notifications() {
		assert.Equal(t, alert.Firing, n.Status, "no resolve was sent")
	}
}

// Per-member alerts are keyed by member ID: two members with the same (or an empty)
// name are two alerts.
func TestFingerprintByMemberID(t *testing.T) {
	rules := rulesNamed(t, alert.DefaultThresholds(), "EtcdMembersDown")
	for i := range rules {
		rules[i].For = 0
	}
	m, err := alert.New(alert.WithRules(rules...))
	require.NoError(t, err)
	defer m.Close()
	r := synthReport(t0, member{1, "same", false, 0}, member{2, "same", false, 0}, member{3, "", false, 0},
		member{4, "", false, 0}, member{5, "x", true, 5})
	firing, err := m.EvaluateCluster(context.Background(), "c1", r, nil)
	require.NoError(t, err)
	require.Len(t, firing, 4)
	ids := map[string]bool{}
	fps := map[string]bool{}
	for _, a := range firing {
		ids[a.Labels["member_id"]] = true
		fps[a.Fingerprint] = true
	}
	assert.Len(t, ids, 4)
	assert.Len(t, fps, 4)
	assert.True(t, ids["1"], "unpadded hex, as etcdctl writes it")
	// Renaming a member keeps its alert.
	r2 := synthReport(t0.Add(time.Second), member{1, "renamed", false, 0}, member{2, "same", false, 0}, member{3, "", false, 0},
		member{4, "", false, 0}, member{5, "x", true, 5})
	firing2, err := m.EvaluateCluster(context.Background(), "c1", r2, nil)
	require.NoError(t, err)
	for _, a := range firing2 {
		assert.True(t, fps[a.Fingerprint])
	}
	assert.Len(t, m.History(), 4, "no transition from a rename")
}

func TestRuleHealthEvents(t *testing.T) {
	th := alert.DefaultThresholds()
	split := three(t0.Add(time.Minute))
	split.SplitBrain = health.SplitBrain{Detected: true, Term: 7, Reason: "two leaders in term 7"}
	split2 := three(t0.Add(2 * time.Minute))
	split2.SplitBrain = split.SplitBrain
	alarmed := three(t0.Add(3 * time.Minute))
	alarmed.Alarms = []health.Alarm{{MemberID: 2, Type: "NOSPACE"}}
	replay(t, rulesNamed(t, th, "EtcdSplitBrain", "EtcdAlarm"), []step{
		{h: three(t0), want: map[string]alert.State{"EtcdSplitBrain": none}},
		{h: split, want: map[string]alert.State{"EtcdSplitBrain": pending}},
		{h: split2, want: map[string]alert.State{"EtcdSplitBrain": firing}},
		{h: alarmed, want: map[string]alert.State{"EtcdSplitBrain": none, "EtcdAlarm/m2": firing}},
		{h: three(t0.Add(4 * time.Minute)), want: map[string]alert.State{"EtcdAlarm/m2": none}},
	})
}

// Raft index lag is judged against the leader's apply rate: 5000 entries behind at 50k
// applies/s is 100 ms — healthy; a follower stuck 5000 behind with no applies is not.
func TestRuleRaftIndexLag(t *testing.T) {
	th := alert.DefaultThresholds()
	md := newModel(3)
	lagging := func(at time.Time, lead, follower uint64) *health.Report {
		r := three(at)
		r.Leader.ID = 1
		r.Members[0].Status.RaftIndex = lead
		r.Members[1].Status.RaftIndex = lead
		r.Members[2].Status.RaftIndex = follower
		return r
	}
	applied := 0.0
	busy := func(_ int, m *metrics.MemberMetrics) { m.Raft.ProposalsApplied = applied }
	var steps []step
	for i := range 4 { // busy: 50k applies per second
		applied += 50000 * 30
		s := md.step(30*time.Second, busy)
		steps = append(steps, step{h: lagging(s.Time, uint64(applied), uint64(applied)-5000), s: s,
			want: map[string]alert.State{"EtcdRaftIndexLag/m3": none}})
		_ = i
	}
	for i := range 7 { // idle, follower stuck; the rate over the last minute falls to 0
		s := md.step(30*time.Second, busy)
		want := pending
		switch {
		case i == 0:
			want = none
		case i >= 5:
			want = firing
		}
		steps = append(steps, step{h: lagging(s.Time, uint64(applied), uint64(applied)-5000), s: s,
			want: map[string]alert.State{"EtcdRaftIndexLag/m3": want}})
	}
	replay(t, rulesNamed(t, th, "EtcdRaftIndexLag"), steps)
}

// keep_firing_for keeps a flapping alert firing across short gaps.
func TestKeepFiringFor(t *testing.T) {
	var on bool
	r := alert.Rule{Name: "Flap", Severity: alert.Warning, Summary: "flap", For: 0, KeepFiringFor: time.Minute, Needs: alert.NeedsHealth,
		Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding {
			if on {
				return []alert.Finding{{}}
			}
			return nil
		}}
	m, err := alert.New(alert.WithRules(r))
	require.NoError(t, err)
	defer m.Close()
	at := t0
	eval := func(v bool, dt time.Duration) alert.State {
		on = v
		at = at.Add(dt)
		_, err := m.EvaluateCluster(context.Background(), "c1", three(at), nil)
		require.NoError(t, err)
		return stateOf(m, "Flap", "")
	}
	assert.Equal(t, firing, eval(true, 0))
	assert.Equal(t, firing, eval(false, 30*time.Second))
	assert.Equal(t, firing, eval(true, 20*time.Second))
	assert.Equal(t, firing, eval(false, 50*time.Second))
	assert.Equal(t, none, eval(false, 20*time.Second))
	assert.Len(t, m.History(), 2, "one firing, one resolve")
}

// Every built-in rule links a runbook, sent as the runbook_url annotation.
func TestBuiltinRulesHaveRunbooks(t *testing.T) {
	for _, r := range alert.DefaultRules(alert.DefaultThresholds()) {
		assert.Regexp(t, `^https://`, r.RunbookURL, r.Name)
	}
	rec := &sink{}
	m, err := alert.New(alert.WithReceiver("r", rec, true), alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers")...))
	require.NoError(t, err)
	defer m.Close()
	_, err = m.EvaluateCluster(context.Background(), "c", three(t0, 2, 3), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(context.Background()))
	require.Len(t, rec.notifications(), 1)
	assert.Equal(t, "https://github.com/etcd-monitor/etcd-monitor/blob/main/docs/runbooks.md#etcdinsufficientmembers",
		rec.notifications()[0].Alerts[0].Annotations["runbook_url"])
}

// Every built-in rule's runbook_url points at a section of docs/runbooks.md that exists.
func TestBuiltinRunbookAnchorsExist(t *testing.T) {
	anchors := runbookAnchors(t, "../docs/runbooks.md")
	for _, r := range alert.DefaultRules(alert.DefaultThresholds()) {
		anchor, ok := strings.CutPrefix(r.RunbookURL, alert.RunbookBase)
		if assert.True(t, ok, "%s: runbook %s is not in docs/runbooks.md", r.Name, r.RunbookURL) {
			assert.True(t, anchors[anchor], "%s: docs/runbooks.md has no section #%s", r.Name, anchor)
		}
	}
}

// runbookAnchors returns the anchors GitHub gives the headings of a Markdown file:
// lower case, punctuation other than '-' and '_' dropped, spaces as '-'.
func runbookAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		h := strings.TrimLeft(line, "#")
		if h == line || !strings.HasPrefix(h, " ") {
			continue
		}
		var a strings.Builder
		for _, c := range strings.ToLower(strings.TrimSpace(h)) {
			switch {
			case c == ' ':
				a.WriteRune('-')
			case c == '-' || c == '_' || unicode.IsLetter(c) || unicode.IsDigit(c):
				a.WriteRune(c)
			}
		}
		out[a.String()] = true
	}
	return out
}

// Per-cluster thresholds: the same data fires in the cluster with the stricter one only.
func TestClusterThresholds(t *testing.T) {
	var cfg alert.Config
	require.NoError(t, yaml.Unmarshal([]byte("cluster_thresholds:\n  prod:\n    quota_used: 0.5\n"), &cfg))
	cfg.Rules = map[string]alert.RuleOverride{"EtcdDatabaseQuotaLowSpace": {For: new(time.Duration)}}
	m, err := alert.New(alert.WithConfig(cfg))
	require.NoError(t, err)
	defer m.Close()
	md := newModel(1)
	// 55% of the 2 GiB quota: over prod's 50%, under the default 95%.
	s := md.step(0, func(_ int, mm *metrics.MemberMetrics) { mm.DB.Size = (1 << 30) + (100 << 20) })
	for _, c := range []string{"prod", "lab"} {
		_, err := m.EvaluateCluster(context.Background(), c, nil, s)
		require.NoError(t, err)
	}
	var fired []string
	for _, a := range m.Alerts() {
		if a.Name == "EtcdDatabaseQuotaLowSpace" {
			fired = append(fired, a.Labels["cluster"]+"/"+a.Name+"/"+string(a.State))
		}
	}
	assert.Equal(t, []string{"prod/EtcdDatabaseQuotaLowSpace/firing"}, fired)
}

// A member down for long enough raises EtcdMembersDown; its failed scrapes do not add a
// second notification (EtcdMetricsUnavailable is inhibited for that member).
func TestMemberDownMutesItsMetricsUnavailable(t *testing.T) {
	rec := &sink{}
	m, err := alert.New(alert.WithReceiver("r", rec, true),
		alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdMembersDown", "EtcdMetricsUnavailable")...))
	require.NoError(t, err)
	defer m.Close()
	md := newModel(3)
	for i := range 8 {
		s := md.step(time.Minute, func(j int, mm *metrics.MemberMetrics) { mm.Scraped = j != 2 })
		_, err := m.EvaluateCluster(context.Background(), "c", three(s.Time, 3), s)
		require.NoError(t, err, i)
	}
	require.NoError(t, m.Flush(context.Background()))
	assert.Equal(t, firing, stateOf(m, "EtcdMetricsUnavailable", "m3"))
	assert.Equal(t, []string{"firing EtcdMembersDown:m3:firing"}, rec.summary())
}

// Without metrics, the raft index lag is judged against the health checker's apply rate.
func TestRuleRaftIndexLagHealthRate(t *testing.T) {
	r := func(at time.Time, rate float64) *health.Report {
		h := three(at)
		h.Leader.ID = 1
		h.ApplyRate = rate
		h.Members[0].Status.RaftIndex, h.Members[1].Status.RaftIndex, h.Members[2].Status.RaftIndex = 100000, 100000, 95000
		return h
	}
	replay(t, rulesNamed(t, alert.DefaultThresholds(), "EtcdRaftIndexLag"), []step{
		{h: r(t0, 50000), want: map[string]alert.State{"EtcdRaftIndexLag/m3": none}},                   // 100 ms behind
		{h: r(t0.Add(time.Minute), 100), want: map[string]alert.State{"EtcdRaftIndexLag/m3": pending}}, // 50 s behind
	})
}
