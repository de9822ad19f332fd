package alert_test

import (
	"context"
	"testing"
	"time"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// BenchmarkEvaluateCluster measures one evaluation of every default rule for a
// 3-member cluster whose history holds 4 h of snapshots 10 s apart (the longest window).
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
