package main

import (
	"context"
	"fmt"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

func init() {
	register("health", "a health check and a metrics snapshot of the cluster, with alert rules evaluated over them", runHealth)
}

func runHealth(ctx context.Context, e *env) error {
	checker, err := health.New(e.cli)
	if err != nil {
		return err
	}
	r, err := checker.Check(ctx)
	if err != nil {
		return err
	}
	for _, m := range r.Members {
		if !m.Reachable {
			e.printf("member %s (%x): unreachable: %s", m.Name, m.Member.ID, m.Error)
			continue
		}
		e.printf("member %s (%x): etcd %s, term %d, raft index %d, revision %d, db %d bytes (%d in use), status in %v, livez %v",
			m.Name, m.Member.ID, m.Version, m.RaftTerm, m.RaftIndex, m.Revision, m.DBSize, m.DBSizeInUse, m.Latency, m.Livez.OK)
	}
	e.printf("quorum %d/%d (needs %d): %v; leader %s agreed: %v; split brain: %v; partition: %v; alarms: %d; healthy: %v",
		r.Quorum.Healthy, r.Quorum.Voters, r.Quorum.Size, r.Quorum.HasQuorum, r.Leader.Name, r.Leader.Agreed,
		r.SplitBrain.Detected, r.Partition.Detected, len(r.Alarms), r.Healthy)

	col, err := metrics.New(e.cli)
	if err != nil {
		return err
	}
	defer col.Close()
	var snap *metrics.Snapshot
	for range 2 { // the second snapshot has rates
		if snap, err = col.Collect(ctx); err != nil {
			return err
		}
	}
	for _, m := range snap.Members {
		if m.Err != nil {
			e.printf("metrics of %s: %v", m.Name, m.Err)
			continue
		}
		e.printf("metrics of %s: probe p50 %v p99 %v; %.0f req/s; db %d of %d bytes quota; WAL fsync p99 %v (%.1f%% over 16ms); %d proposals pending",
			m.Name, m.Latency.P50, m.Latency.P99, m.Throughput.Requests, m.DB.Size, m.DB.Quota,
			m.WALFsync.P99, 100*m.WALFsync.Over16ms, int(m.Raft.ProposalsPending))
	}

	few := alert.Rule{Name: "EtcdFewMembers", Severity: alert.Warning, Summary: "the cluster cannot survive a member failure",
		Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
			if h == nil || len(h.Members) >= 3 {
				return nil
			}
			return []alert.Finding{{Value: float64(len(h.Members)), Description: fmt.Sprintf("%d member(s)", len(h.Members))}}
		}}
	mgr, err := alert.New(alert.WithExtraRules(few), alert.WithNotifier("stdout", alert.NotifierFunc(func(_ context.Context, a alert.Alert) error {
		e.printf("alert %s [%s] %s: %s (%s)", a.State, a.Severity, a.Name, a.Summary, a.Description)
		return nil
	})))
	if err != nil {
		return err
	}
	defer mgr.Close()
	firing, err := mgr.Evaluate(ctx, r, snap)
	if err != nil {
		return err
	}
	if err := mgr.Flush(ctx); err != nil {
		return err
	}
	e.printf("%d alert(s) firing", len(firing))
	return nil
}
