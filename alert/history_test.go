package alert_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// historyProbe is a rule that records the times of the history it is given.
func historyProbe(times *[]time.Time) alert.Rule {
	return alert.Rule{Name: "HistoryProbe", Needs: alert.NeedsMetrics, Check: func(in *alert.Input) []alert.Finding {
		*times = (*times)[:0]
		for _, s := range in.History {
			*times = append(*times, s.Time)
		}
		return nil
	}}
}

// historyBound is the bound doc.go states on the snapshots kept per cluster, for
// snapshots at least every apart.
func historyBound(th alert.Thresholds, every time.Duration) int {
	dense := max(th.GRPCWindow, th.HistogramWindow, time.Minute) + time.Minute
	return min(int(dense/every)+1, 3000)
}

// The history of a cluster holds every snapshot within the short windows and none
// older: after hours of snapshots it never holds more than doc.go's bound, whatever the
// interval. (The counters kept further back are TestRuleLeaderChanges' and
// TestRuleFailedProposals'; the database sizes, for the growth regression,
// TestRuleDatabaseGrowthOnThinnedHistory's.)
func TestHistoryBoundedByShortWindows(t *testing.T) {
	custom := alert.DefaultThresholds()
	custom.LeaderChangesWindow, custom.HistogramWindow = 30*time.Minute, 2*time.Minute
	custom.GrowthWindow, custom.GrowthMinSpan = 6*time.Hour, 2*time.Hour
	cases := []struct {
		name   string
		th     alert.Thresholds
		every  time.Duration // the shortest interval
		jitter time.Duration // added to every, at random
		want   int           // doc.go's figure, where it gives one
	}{
		{"default thresholds, 10s", alert.DefaultThresholds(), 10 * time.Second, 0, 37},
		{"default thresholds, 10s to 11s", alert.DefaultThresholds(), 10 * time.Second, time.Second, 0},
		{"default thresholds, 5s", alert.DefaultThresholds(), 5 * time.Second, 0, 0},
		{"default thresholds, 90s", alert.DefaultThresholds(), 90 * time.Second, 0, 0},
		{"longer windows, 15s", custom, 15 * time.Second, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bound := historyBound(tc.th, tc.every)
			if tc.want > 0 {
				require.Equal(t, tc.want, bound, "the figure in doc.go")
			}
			var times []time.Time
			m, err := alert.New(alert.WithRules(historyProbe(&times)), alert.WithThresholds(tc.th))
			require.NoError(t, err)
			defer m.Close()
			dense := max(tc.th.GRPCWindow, tc.th.HistogramWindow, time.Minute) + time.Minute
			span := tc.th.GrowthWindow + time.Minute
			rng := rand.New(rand.NewPCG(1, 2))
			md := newModel(3)
			var fed []time.Time
			most, first := 0, 0
			for md.t.Sub(t0) < span+30*time.Minute {
				dt := tc.every
				if tc.jitter > 0 {
					dt += time.Duration(rng.Int64N(int64(tc.jitter)))
				}
				s := md.step(dt, busy)
				fed = append(fed, s.Time)
				_, err := m.EvaluateCluster(context.Background(), "c1", nil, s)
				require.NoError(t, err)
				require.LessOrEqual(t, len(times), bound, "snapshots kept at %v", s.Time.Sub(t0))
				most = max(most, len(times))

				// Every snapshot within the short windows is kept, and none older.
				for s.Time.Sub(fed[first]) > dense {
					first++
				}
				require.Equal(t, fed[first:], times, "the short windows at %v", s.Time.Sub(t0))
			}
			t.Logf("%d snapshots fed, at most %d kept (bound %d)", len(fed), most, bound)
		})
	}
}

// refGrowth is the growth regression over every sample, as the rule computed it when the
// history kept every snapshot of the growth window: the DB size of member id predicted
// FillWithin after the newest sample, and whether the samples span GrowthMinSpan.
func refGrowth(th alert.Thresholds, fed []*metrics.Snapshot, id metrics.ID) (float64, bool) {
	end := fed[len(fed)-1].Time
	var ts []time.Time
	var ys []float64
	for _, s := range fed {
		if s.Time.Before(end.Add(-th.GrowthWindow)) {
			continue
		}
		for j := range s.Members {
			if mm := &s.Members[j]; mm.ID == id && mm.Scraped {
				ts, ys = append(ts, s.Time), append(ys, float64(mm.DB.Size))
			}
		}
	}
	if len(ts) < 2 || ts[len(ts)-1].Sub(ts[0]) < th.GrowthMinSpan {
		return 0, false
	}
	var n, sx, sy, sxx, sxy float64
	for i := range ts {
		x, y := ts[i].Sub(ts[0]).Seconds(), ys[i]
		n, sx, sy, sxx, sxy = n+1, sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	icpt := (sy - slope*sx) / n
	return icpt + slope*ts[len(ts)-1].Add(th.FillWithin).Sub(ts[0]).Seconds(), true
}

// EtcdExcessiveDatabaseGrowth decides on the history thinned to one snapshot a minute
// beyond the short windows as it did on every snapshot: over 5 h of snapshots 10 s
// apart, at each evaluation its alert is there (pending or firing) exactly when the
// regression over every sample predicts the quota full, except within 1% of the quota,
// and its value is that prediction within 1% (of the prediction, or the quota if more).
func TestRuleDatabaseGrowthOnThinnedHistory(t *testing.T) {
	th := alert.DefaultThresholds()
	const (
		mib   = 1 << 20
		gib   = 1 << 30
		quota = 2 * gib
		every = 10 * time.Second
	)
	rng := rand.New(rand.NewPCG(3, 4))
	// Each member's DB size after k intervals (h hours).
	sizes := []struct {
		name string
		size func(k int, h float64) float64
	}{
		// Flat, with a defrag's 1 GiB temporary copy for one interval every 37 minutes.
		{"spikes", func(k int, _ float64) float64 {
			if k%222 == 111 {
				return 100*mib + gib
			}
			return 100 * mib
		}},
		// Flat for 2 h, then 1.2 GiB/h up to 1.9 GiB.
		{"fills", func(_ int, h float64) float64 { return min(100*mib+1.2*gib*max(h-2, 0), 1.9*gib) }},
		// Growing faster and faster: the prediction reaches the quota after about 3 h.
		{"accelerates", func(_ int, h float64) float64 { return 100*mib + 60*mib*h*h }},
		// 0.25 GiB/h with ±16 MiB of noise: the prediction reaches the quota at 3.6 h.
		{"noisy", func(_ int, h float64) float64 { return 100*mib + 0.25*gib*h + 32*mib*(rng.Float64()-0.5) }},
		// 0.5 GiB/h, and one scrape in seven fails.
		{"scrapes fail", func(_ int, h float64) float64 { return 100*mib + 0.5*gib*h }},
	}
	m, err := alert.New(alert.WithRules(rulesNamed(t, th, "EtcdExcessiveDatabaseGrowth")...))
	require.NoError(t, err)
	defer m.Close()
	md := newModel(len(sizes))
	var fed []*metrics.Snapshot
	present := make([]int, len(sizes))
	fired := make([]bool, len(sizes))
	worst := 0.0 // the largest difference of the predictions, relative
	for k := 0; k <= 5*360; k++ {
		h := float64(k) * every.Hours()
		s := md.step(every, func(i int, mm *metrics.MemberMetrics) {
			mm.DB.Size, mm.DB.Quota = int64(sizes[i].size(k, h)), quota
			mm.Scraped = i != 4 || k%7 != 3
		})
		fed = append(fed, s)
		for s.Time.Sub(fed[0].Time) > th.GrowthWindow {
			fed = fed[1:] // refGrowth reads no further back
		}
		_, err := m.EvaluateCluster(context.Background(), "c1", nil, s)
		require.NoError(t, err)
		alerts := map[string]alert.Alert{}
		for _, a := range m.Alerts() {
			alerts[a.Labels["member"]] = a
		}
		for i, sz := range sizes {
			mm := s.Members[i]
			if !mm.Scraped {
				continue // the rule cannot tell: the alert holds
			}
			pred, known := refGrowth(th, fed, mm.ID)
			a, there := alerts[mm.Name]
			if there {
				present[i]++
				fired[i] = fired[i] || a.State == alert.Firing
			}
			if !known {
				assert.False(t, there, "%s at %v: fewer than %v of samples", sz.name, s.Time.Sub(t0), th.GrowthMinSpan)
				continue
			}
			if there {
				assert.InDelta(t, pred, a.Value, 0.01*max(pred, quota), "%s at %v: the prediction", sz.name, s.Time.Sub(t0))
				worst = max(worst, math.Abs(a.Value-pred)/max(pred, quota))
			}
			if math.Abs(pred-quota) > 0.01*quota {
				assert.Equal(t, pred > quota, there, "%s at %v: predicted %.0f MiB of %d", sz.name, s.Time.Sub(t0), pred/mib, quota/mib)
			}
		}
	}
	assert.Zero(t, present[0], "defrag copies never fill the quota")
	for i := 1; i < len(sizes); i++ {
		assert.True(t, fired[i], "%s fires", sizes[i].name)
	}
	t.Logf("evaluations with the alert pending or firing, by member: %v; predictions differ by %.2f%% at most", present, 100*worst)
}
