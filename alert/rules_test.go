package alert_test

import (
	"context"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// The rule tests replay recorded sequences of health reports and metric snapshots and
// check, at every step, whether each alert is absent (""), pending or firing.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// model is a cluster whose metrics a test moves forward step by step.
type model struct {
	t  time.Time
	ms []metrics.MemberMetrics
}

func newModel(n int) *model {
	md := &model{t: t0}
	for i := range n {
		md.ms = append(md.ms, metrics.MemberMetrics{ID: metrics.ID(i + 1), Name: "m" + string(rune('1'+i)), Scraped: true,
			Latency: metrics.Latency{Samples: 10, P99: 5 * time.Millisecond},
			DB:      metrics.DB{Size: 100 << 20, InUse: 90 << 20, Quota: 2 << 30},
			Raft:    metrics.Raft{HasLeader: true, IsLeader: i == 0}})
	}
	return md
}

// step advances the model by dt, applies mut to every member, and returns the snapshot.
func (md *model) step(dt time.Duration, mut func(i int, m *metrics.MemberMetrics)) *metrics.Snapshot {
	md.t = md.t.Add(dt)
	s := &metrics.Snapshot{Time: md.t}
	for i := range md.ms {
		if mut != nil {
			mut(i, &md.ms[i])
		}
		c := md.ms[i]
		c.GRPCHandled = maps.Clone(c.GRPCHandled)
		for _, h := range []*metrics.Histogram{&c.WALFsync, &c.BackendCommit, &c.PeerRTT} {
			h.Buckets = append([]metrics.Bucket(nil), h.Buckets...)
		}
		if !c.Scraped {
			// A failed scrape leaves every scraped field zero.
			c = metrics.MemberMetrics{ID: c.ID, Name: c.Name, Error: "scrape failed", Latency: c.Latency}
		}
		s.Members = append(s.Members, c)
	}
	return s
}

// observe adds n observations of v seconds to a cumulative histogram with etcd's
// disk-latency bounds (1ms doubling to 8.192s).
func observe(h *metrics.Histogram, n uint64, v float64) {
	if h.Buckets == nil {
		for k := range 14 {
			h.Buckets = append(h.Buckets, metrics.Bucket{UpperBound: 0.001 * math.Pow(2, float64(k))})
		}
		h.Buckets = append(h.Buckets, metrics.Bucket{UpperBound: math.Inf(1)})
	}
	for i := range h.Buckets {
		if h.Buckets[i].UpperBound >= v {
			h.Buckets[i].Count += n
		}
	}
	h.Total += n
}

type step struct {
	h    *health.Report
	s    *metrics.Snapshot
	want map[string]alert.State // "Name" or "Name/member" → state; unlisted keys are not checked
}

func warnings(rs []alert.Rule) []alert.Rule {
	var out []alert.Rule
	for _, r := range rs {
		if r.Severity == alert.Warning {
			out = append(out, r)
		}
	}
	return out
}

func rulesNamed(t *testing.T, th alert.Thresholds, names ...string) []alert.Rule {
	t.Helper()
	var out []alert.Rule
	for _, r := range alert.DefaultRules(th) {
		for _, n := range names {
			if r.Name == n {
				out = append(out, r)
			}
		}
	}
	require.NotEmpty(t, out, names)
	return out
}

// replay evaluates the steps in order and checks the states.
func replay(t *testing.T, rules []alert.Rule, steps []step) {
	t.Helper()
	m, err := alert.New(alert.WithRules(rules...))
	require.NoError(t, err)
	defer m.Close()
	for i, st := range steps {
		_, err := m.EvaluateCluster(context.Background(), "c1", st.h, st.s)
		require.NoError(t, err, "step %d", i)
		for key, want := range st.want {
			name, member, _ := cut(key)
			assert.Equal(t, want, stateOf(m, name, member), "step %d: %s", i, key)
		}
	}
}

func cut(key string) (string, string, bool) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

const (
	none    = alert.State("")
	pending = alert.Pending
	firing  = alert.Firing
)

// A rolling restart — each member down 60 s in turn, health checked every 5 s — raises
// nothing that fires: EtcdMembersDown stays pending, quorum holds.
func TestRuleRollingRestartFiresNothing(t *testing.T) {
	rules := alert.DefaultRules(alert.DefaultThresholds())
	var steps []step
	at := t0
	for _, down := range []uint64{2, 3, 1} {
		for range 6 { // up 30 s between restarts
			at = at.Add(5 * time.Second)
			steps = append(steps, step{h: three(at), want: map[string]alert.State{"EtcdMembersDown": none}})
		}
		for i := range 13 { // down 60 s: 13 checks 5 s apart
			at = at.Add(5 * time.Second)
			r := three(at, down)
			if down == 1 && i < 1 {
				// the leader's followers notice and elect a new one: an election takes
				// a second or two, so one check sees it
				for j := range r.Members {
					r.Members[j].Status.Leader = 0
				}
				r.Quorum.Healthy = 0
			} else if down == 1 {
				for j := range r.Members {
					if r.Members[j].Reachable {
						r.Members[j].Status.Leader = 2
					}
				}
				r.Quorum.Healthy = 2
			}
			steps = append(steps, step{h: r, want: map[string]alert.State{
				"EtcdMembersDown": pending, "EtcdInsufficientMembers": none, "EtcdMemberNoLeader": none}})
		}
	}
	m, err := alert.New(alert.WithRules(rules...))
	require.NoError(t, err)
	defer m.Close()
	for i, st := range steps {
		_, err := m.EvaluateCluster(context.Background(), "c1", st.h, nil)
		require.NoError(t, err)
		for _, a := range m.Alerts() {
			assert.NotEqual(t, alert.Firing, a.State, "step %d: %s %v", i, a.Name, a.Labels)
		}
		for key, want := range st.want {
			name, member, _ := cut(key)
			assert.Equal(t, want, stateOf(m, name, member), "step %d: %s", i, key)
		}
	}
}

func TestRuleQuorumLossAndUnreachable(t *testing.T) {
	rules := rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers", "EtcdClusterUnreachable", "EtcdMembersDown", "EtcdNoLeader")
	replay(t, rules, []step{
		{h: three(t0), want: map[string]alert.State{"EtcdInsufficientMembers": none}},
		{h: three(t0.Add(5*time.Second), 1, 2), want: map[string]alert.State{"EtcdInsufficientMembers": firing,
			"EtcdMembersDown/m1": pending, "EtcdMembersDown/m2": pending, "EtcdClusterUnreachable": none, "EtcdNoLeader": none}},
		{h: three(t0.Add(4*time.Minute), 1, 2), want: map[string]alert.State{"EtcdInsufficientMembers": firing,
			"EtcdMembersDown/m1": firing}},
		{h: three(t0.Add(5*time.Minute), 1, 2, 3), want: map[string]alert.State{"EtcdClusterUnreachable": firing}},
		{h: three(t0.Add(6 * time.Minute)), want: map[string]alert.State{"EtcdInsufficientMembers": none,
			"EtcdClusterUnreachable": none, "EtcdMembersDown/m1": none}},
	})
}

func TestRuleNoLeader(t *testing.T) {
	noLeader := func(at time.Time) *health.Report {
		return synthReport(at, member{1, "m1", true, 0}, member{2, "m2", true, 0}, member{3, "m3", true, 0})
	}
	rules := rulesNamed(t, alert.DefaultThresholds(), "EtcdNoLeader", "EtcdMemberNoLeader")
	replay(t, rules, []step{
		{h: three(t0), want: map[string]alert.State{"EtcdNoLeader": none}},
		// No leader for 5 s (longer than an election): fires.
		{h: noLeader(t0.Add(5 * time.Second)), want: map[string]alert.State{"EtcdNoLeader": pending, "EtcdMemberNoLeader": none}},
		{h: noLeader(t0.Add(8 * time.Second)), want: map[string]alert.State{"EtcdNoLeader": pending}},
		{h: noLeader(t0.Add(10 * time.Second)), want: map[string]alert.State{"EtcdNoLeader": firing, "EtcdMemberNoLeader": none}},
		{h: three(t0.Add(15 * time.Second)), want: map[string]alert.State{"EtcdNoLeader": none}},
		// An election caught by one check: pending, then gone.
		{h: noLeader(t0.Add(20 * time.Second)), want: map[string]alert.State{"EtcdNoLeader": pending}},
		{h: three(t0.Add(25 * time.Second)), want: map[string]alert.State{"EtcdNoLeader": none}},
		// One member cut off while the others have a leader: per member, after 1 m.
		{h: synthReport(t0.Add(30*time.Second), member{1, "m1", true, 1}, member{2, "m2", true, 1}, member{3, "m3", true, 0}),
			want: map[string]alert.State{"EtcdNoLeader": none, "EtcdMemberNoLeader/m3": pending}},
		{h: synthReport(t0.Add(95*time.Second), member{1, "m1", true, 1}, member{2, "m2", true, 1}, member{3, "m3", true, 0}),
			want: map[string]alert.State{"EtcdMemberNoLeader/m3": firing}},
	})
}

// Leader changes come from etcd's own counter over 15 m (the most any member saw); a
// member's restart resets its counter without counting as changes.
func TestRuleLeaderChanges(t *testing.T) {
	rules := rulesNamed(t, alert.DefaultThresholds(), "EtcdHighNumberOfLeaderChanges")
	md := newModel(3)
	var steps []step
	add := func(changes float64, restart int, want alert.State) {
		steps = append(steps, step{s: md.step(time.Minute, func(i int, m *metrics.MemberMetrics) {
			m.Raft.LeaderChanges += changes
			if i == restart {
				m.Raft.LeaderChanges = 1
			}
		}), want: map[string]alert.State{"EtcdHighNumberOfLeaderChanges": want}})
	}
	add(1, -1, none) // s0: one sample, nothing to tell
	add(0, -1, none)
	add(1, 1, none) // s2: m2 restarts, one change
	add(1, -1, none)
	add(1, -1, none)
	add(1, -1, pending) // s5: 4 changes within 15 m
	for range 4 {
		add(0, -1, pending)
	}
	for range 7 { // s10..s16: pending 5 m, then firing while s1 is in the window
		add(0, -1, firing)
	}
	add(0, -1, none) // s17: the change of s2 left the window
	replay(t, rules, steps)
}

// Failed proposals over a 15 m window: an election's burst never fires (the defect was
// an hourly rate extrapolated from one 10 s delta); a sustained failure does.
func TestRuleFailedProposals(t *testing.T) {
	rules := rulesNamed(t, alert.DefaultThresholds(), "EtcdHighNumberOfFailedProposals")
	md := newModel(1)
	steps := []step{{s: md.step(0, nil), want: map[string]alert.State{"EtcdHighNumberOfFailedProposals/m1": none}}}
	steps = append(steps, step{s: md.step(10*time.Second, func(_ int, m *metrics.MemberMetrics) { m.Raft.ProposalsFailed += 3 }),
		want: map[string]alert.State{"EtcdHighNumberOfFailedProposals/m1": none}})
	// A big burst (20 at once) goes pending but leaves the window before 15 m.
	steps = append(steps, step{s: md.step(10*time.Second, func(_ int, m *metrics.MemberMetrics) { m.Raft.ProposalsFailed += 20 }),
		want: map[string]alert.State{"EtcdHighNumberOfFailedProposals/m1": pending}})
	for range 14 {
		steps = append(steps, step{s: md.step(time.Minute, nil), want: map[string]alert.State{"EtcdHighNumberOfFailedProposals/m1": pending}})
	}
	steps = append(steps, step{s: md.step(time.Minute, nil), want: map[string]alert.State{"EtcdHighNumberOfFailedProposals/m1": none}})
	// Sustained: one per minute.
	for i := range 25 {
		want := none
		switch {
		case i >= 20:
			want = firing
		case i >= 5:
			want = pending
		}
		steps = append(steps, step{s: md.step(time.Minute, func(_ int, m *metrics.MemberMetrics) { m.Raft.ProposalsFailed++ }),
			want: map[string]alert.State{"EtcdHighNumberOfFailedProposals/m1": want}})
	}
	replay(t, rules, steps)
}

func TestRuleFailedGRPCRequests(t *testing.T) {
	rules := rulesNamed(t, alert.DefaultThresholds(), "EtcdHighNumberOfFailedGRPCRequests")
	md := newModel(1)
	traffic := func(ok, failed float64) func(int, *metrics.MemberMetrics) {
		return func(_ int, m *metrics.MemberMetrics) {
			if m.GRPCHandled == nil {
				m.GRPCHandled = map[string]float64{}
			}
			m.GRPCHandled["OK"] += ok
			m.GRPCHandled["Unavailable"] += failed
			m.GRPCHandled["NotFound"] += failed // a client error, not counted
		}
	}
	var steps []step
	w := func(warn, crit alert.State) map[string]alert.State {
		return map[string]alert.State{"EtcdHighNumberOfFailedGRPCRequests/m1": max(warn, crit)}
	}
	steps = append(steps, step{s: md.step(0, traffic(1000, 0)), want: w(none, none)})
	for range 3 {
		steps = append(steps, step{s: md.step(time.Minute, traffic(1000, 5)), want: w(none, none)}) // 0.5%
	}
	// 3% for 12 minutes: the warning fires after 10 m.
	for i := range 12 {
		want := pending
		if i >= 10 {
			want = firing
		}
		steps = append(steps, step{s: md.step(time.Minute, traffic(1000, 30)), want: w(want, none)})
	}
	replay(t, rules, steps)

	// 10%: the critical tier fires after 5 m, the warning after 10 m.
	md = newModel(1)
	m, err := alert.New(alert.WithRules(rules...))
	require.NoError(t, err)
	defer m.Close()
	_, err = m.EvaluateCluster(context.Background(), "c1", nil, md.step(0, traffic(1000, 0)))
	require.NoError(t, err)
	sev := func() map[alert.Severity]alert.State {
		out := map[alert.Severity]alert.State{}
		for _, a := range m.Alerts() {
			out[a.Severity] = a.State
		}
		return out
	}
	for i := 1; i <= 11; i++ {
		_, err := m.EvaluateCluster(context.Background(), "c1", nil, md.step(time.Minute, traffic(1000, 110)))
		require.NoError(t, err)
		got := sev()
		assert.Equal(t, map[bool]alert.State{true: firing, false: pending}[i > 5], got[alert.Critical], "minute %d", i)
		assert.Equal(t, map[bool]alert.State{true: firing, false: pending}[i > 10], got[alert.Warning], "minute %d", i)
	}
}

// Histogram rules take the p99 of the observations within the window from cumulative
// buckets, so one slow burst leaves the window and a member restart (buckets reset)
// does not confuse them.
func TestRuleHistogramPercentiles(t *testing.T) {
	th := alert.DefaultThresholds()
	cases := []struct {
		rule string
		hist func(*metrics.MemberMetrics) *metrics.Histogram
		slow float64
	}{
		{"EtcdMemberCommunicationSlow", func(m *metrics.MemberMetrics) *metrics.Histogram { return &m.PeerRTT }, 0.3},
		{"EtcdHighFsyncDurations", func(m *metrics.MemberMetrics) *metrics.Histogram { return &m.WALFsync }, 0.7},
		{"EtcdHighCommitDurations", func(m *metrics.MemberMetrics) *metrics.Histogram { return &m.BackendCommit }, 0.4},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			md := newModel(1)
			obs := func(n uint64, v float64) func(int, *metrics.MemberMetrics) {
				return func(_ int, m *metrics.MemberMetrics) { observe(tc.hist(m), n, v) }
			}
			key := tc.rule + "/m1"
			steps := []step{{s: md.step(0, obs(1000, 0.002)), want: map[string]alert.State{key: none}}}
			for range 5 {
				steps = append(steps, step{s: md.step(time.Minute, obs(1000, 0.002)), want: map[string]alert.State{key: none}})
			}
			for i := range 14 {
				want := pending
				if i >= 10 {
					want = firing
				}
				steps = append(steps, step{s: md.step(time.Minute, obs(1000, tc.slow)), want: map[string]alert.State{key: want}})
			}
			// The member restarts: its buckets start again from zero, fast.
			steps = append(steps, step{s: md.step(time.Minute, func(_ int, m *metrics.MemberMetrics) {
				*tc.hist(m) = metrics.Histogram{}
				observe(tc.hist(m), 100, 0.002)
			}), want: map[string]alert.State{key: firing}}) // the window still holds slow ones
			for range 6 {
				steps = append(steps, step{s: md.step(time.Minute, obs(1000, 0.002)), want: map[string]alert.State{}})
			}
			steps[len(steps)-1].want[key] = none
			replay(t, warnings(rulesNamed(t, th, tc.rule)), steps)
		})
	}
	// Fsync's critical tier at 1 s.
	md := newModel(1)
	m, err := alert.New(alert.WithRules(rulesNamed(t, th, "EtcdHighFsyncDurations")...))
	require.NoError(t, err)
	defer m.Close()
	_, err = m.EvaluateCluster(context.Background(), "c1", nil, md.step(0, func(_ int, mm *metrics.MemberMetrics) { observe(&mm.WALFsync, 10, 0.002) }))
	require.NoError(t, err)
	for range 11 {
		_, err = m.EvaluateCluster(context.Background(), "c1", nil, md.step(time.Minute, func(_ int, mm *metrics.MemberMetrics) { observe(&mm.WALFsync, 100, 3) }))
		require.NoError(t, err)
	}
	var sevs []alert.Severity
	for _, a := range m.Active() {
		sevs = append(sevs, a.Severity)
	}
	assert.ElementsMatch(t, []alert.Severity{alert.Critical, alert.Warning}, sevs)
}

func TestRulePendingProposals(t *testing.T) {
	md := newModel(1)
	key := "EtcdHighNumberOfPendingProposals/m1"
	var steps []step
	for i := range 12 {
		pend, want := 50.0, pending
		switch {
		case i < 2:
			pend, want = 1, none
		case i >= 7:
			want = firing
		}
		steps = append(steps, step{s: md.step(time.Minute, func(_ int, m *metrics.MemberMetrics) { m.Raft.ProposalsPending = pend }),
			want: map[string]alert.State{key: want}})
	}
	replay(t, rulesNamed(t, alert.DefaultThresholds(), "EtcdHighNumberOfPendingProposals"), steps)
}

// DB growth is predicted by a regression over at least an hour of samples, not from
// one delta: a 10 s spike fires nothing; steady growth that fills the quota within 4 h
// fires after an hour of samples plus 10 m.
func TestRuleDatabaseGrowth(t *testing.T) {
	md := newModel(1)
	key := "EtcdExcessiveDatabaseGrowth/m1" // checked below
	var steps []step
	steps = append(steps, step{s: md.step(0, nil), want: map[string]alert.State{key: none}})
	// A spike of 1 GiB in 10 s (a defrag's temporary copy would look like this) and back.
	steps = append(steps, step{s: md.step(10*time.Second, func(_ int, m *metrics.MemberMetrics) { m.DB.Size += 1 << 30 }),
		want: map[string]alert.State{key: none}})
	steps = append(steps, step{s: md.step(10*time.Second, func(_ int, m *metrics.MemberMetrics) { m.DB.Size -= 1 << 30 }),
		want: map[string]alert.State{key: none}})
	for range 5 {
		steps = append(steps, step{s: md.step(10*time.Minute, nil), want: map[string]alert.State{key: none}})
	}
	// Now +100 MiB every 5 minutes: 1.2 GiB/h fills the rest of 2 GiB within 4 h.
	for range 30 {
		steps = append(steps, step{s: md.step(5*time.Minute, func(_ int, m *metrics.MemberMetrics) { m.DB.Size += 100 << 20 })})
	}
	m, err := alert.New(alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdExcessiveDatabaseGrowth")...))
	require.NoError(t, err)
	defer m.Close()
	firstPending, fired := -1, -1
	for i, st := range steps {
		_, err := m.EvaluateCluster(context.Background(), "c1", nil, st.s)
		require.NoError(t, err)
		state := stateOf(m, "EtcdExcessiveDatabaseGrowth", "m1")
		if i < 8 {
			assert.Equal(t, none, state, "step %d: flat, or a spike", i)
		}
		if firstPending < 0 && state == pending {
			firstPending = i
		}
		if fired < 0 && state == firing {
			fired = i
		}
	}
	require.Positive(t, firstPending, "steady growth goes pending")
	require.Positive(t, fired, "and fires")
	assert.GreaterOrEqual(t, st(steps, fired).Sub(st(steps, firstPending)), 10*time.Minute, "after for: 10m")
}

func st(steps []step, i int) time.Time { return steps[i].s.Time }
