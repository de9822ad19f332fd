package alert_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// BenchmarkEvaluateCluster measures one evaluation of every default rule for a
// 3-member cluster after 4 h of snapshots 10 s apart (the longest window).
func BenchmarkEvaluateCluster(b *testing.B) {
	m, err := alert.New()
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	md := newModel(3)
	grow := func(_ int, mm *metrics.MemberMetrics) {
		observe(&mm.WALFsync, 100, 0.002)
		observe(&mm.BackendCommit, 100, 0.004)
		observe(&mm.PeerRTT, 100, 0.001)
		if mm.GRPCHandled == nil {
			mm.GRPCHandled = map[string]float64{}
		}
		mm.GRPCHandled["OK"] += 1000
		mm.DB.Size += 1024
	}
	ctx := context.Background()
	for range 4 * 360 {
		if _, err := m.EvaluateCluster(ctx, "c", nil, md.step(10*time.Second, grow)); err != nil {
			b.Fatal(err)
		}
	}
	h := three(md.t)
	for b.Loop() {
		s := md.step(10*time.Second, grow)
		h.Time = s.Time
		if _, err := m.EvaluateCluster(ctx, "c", h, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistoryRetained reports what a Manager keeps per cluster after 4 h of
// snapshots 10 s apart (the default metrics interval) of a 3-member cluster, with the
// default thresholds and rules: the heap it retains (retained-B/cluster) and the number
// of snapshots in the cluster's history (snapshots/cluster).
func BenchmarkHistoryRetained(b *testing.B) {
	const clusters = 2
	ctx := context.Background()
	var bytes, kept float64
	runs := 0
	for b.Loop() {
		var n int
		probe := alert.Rule{Name: "HistoryProbe", Needs: alert.NeedsMetrics,
			Check: func(in *alert.Input) []alert.Finding { n = len(in.History); return nil }}
		m, err := alert.New(alert.WithExtraRules(probe))
		if err != nil {
			b.Fatal(err)
		}
		models := make([]*model, clusters)
		for c := range models {
			models[c] = realisticModel(3)
		}
		before := heapInUse()
		for c, md := range models {
			for range 4*360 + 1 {
				if _, err := m.EvaluateCluster(ctx, fmt.Sprintf("c%d", c), nil, md.step(10*time.Second, busy)); err != nil {
					b.Fatal(err)
				}
			}
			kept += float64(n)
		}
		bytes += float64(heapInUse()-before) / clusters
		runtime.KeepAlive(m)
		m.Close()
		runs++
	}
	b.ReportMetric(bytes/float64(runs), "retained-B/cluster")
	b.ReportMetric(kept/float64(runs*clusters), "snapshots/cluster")
}

// heapInUse is the heap in use after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// realisticModel is newModel with what a scrape of etcd fills in: endpoints, the three
// histograms with etcd's buckets, and unary calls by code.
func realisticModel(n int) *model {
	md := newModel(n)
	for i := range md.ms {
		mm := &md.ms[i]
		mm.Endpoint = fmt.Sprintf("https://10.0.0.%d:2379", i+1)
		mm.MetricsURL = mm.Endpoint + "/metrics"
		busy(i, mm)
	}
	return md
}

// busy is a member's traffic over one interval.
func busy(_ int, mm *metrics.MemberMetrics) {
	observe(&mm.WALFsync, 100, 0.002)
	observe(&mm.BackendCommit, 100, 0.004)
	observe(&mm.PeerRTT, 100, 0.001)
	if mm.GRPCHandled == nil {
		mm.GRPCHandled = map[string]float64{}
	}
	for _, c := range []string{"OK", "NotFound", "FailedPrecondition", "Unavailable", "DeadlineExceeded", "Canceled"} {
		mm.GRPCHandled[c] += 10
	}
	mm.Raft.ProposalsApplied += 1000
	mm.Raft.ProposalsCommitted += 1000
	mm.DB.Size += 1024
}
