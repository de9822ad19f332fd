package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lease"
)

// BenchmarkRevokeNoticed measures how long a Keeper takes to report its lease lost
// after another client revoked it (the guarantee: within one renewal interval, at
// most one second), and how long New takes (one grant).
func BenchmarkRevokeNoticed(b *testing.B) {
	cli := etcdtest.Client(b)
	other := etcdtest.Client(b)
	ctx := context.Background()
	var grant, noticed time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		k, err := lease.New(ctx, cli, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		grant += time.Since(start)
		revoked := time.Now()
		if _, err := other.Revoke(ctx, k.ID()); err != nil {
			b.Fatal(err)
		}
		<-k.Lost()
		noticed += time.Since(revoked)
		_ = k.Close()
		n++
	}
	b.ReportMetric(float64(grant.Microseconds())/1000/float64(n), "grant-ms")
	b.ReportMetric(float64(noticed.Microseconds())/1000/float64(n), "noticed-ms")
}
