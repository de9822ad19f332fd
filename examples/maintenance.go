package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

func init() {
	register("maintenance", "guarded cluster care: members, alarms, compaction, a verified snapshot and a defragmentation that refuses to cost quorum", runMaintenance)
}

func runMaintenance(ctx context.Context, e *env) error {
	m, err := maintenance.New(e.cli)
	if err != nil {
		return err
	}

	ml, err := m.Members(ctx)
	if err != nil {
		return err
	}
	for _, mem := range ml.Members {
		e.printf("member %s (%s): leader %v, learner %v, db %d bytes", mem.Name, mem.ID.Hex(), mem.Leader, mem.Learner, mem.DBSize)
	}
	ar, err := m.Alarms(ctx)
	if err != nil {
		return err
	}
	e.printf("%d alarm(s)", len(ar.Alarms))
	for _, u := range ar.Usage {
		e.printf("  %s uses %.2f%% of its %d-byte quota", u.MemberName, 100*u.Ratio, u.Quota)
	}

	// Some history to compact: one key rewritten a hundred times.
	for i := range 100 {
		if _, err := e.cli.Put(ctx, "/examples/maintenance/counter", fmt.Sprint(i)); err != nil {
			return err
		}
	}
	c, err := m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: 10, Physical: true})
	if err != nil {
		return err
	}
	e.printf("compacted to revision %d of %d: the last 10 revisions are kept", c.CompactRevision, c.Revision)

	dir, err := os.MkdirTemp("", "etcd-monitor-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	snap, err := m.SnapshotFile(ctx, filepath.Join(dir, "snapshot.db"), maintenance.SnapshotRequest{})
	if err != nil {
		return err
	}
	e.printf("snapshot of %s: revision %d, %d keys, %d bytes, sha256 %s… (verified)", snap.MemberName, snap.Revision, snap.Keys, snap.Size, snap.SHA256[:12])

	// A defragmentation pauses each member in turn; a cluster of one cannot keep a
	// quorum meanwhile, so it is refused unless allowed.
	plan, err := m.Defragment(ctx, maintenance.DefragmentRequest{DryRun: true})
	switch {
	case errors.Is(err, maintenance.ErrQuorum):
		e.printf("defragment refused: %v", err)
	case err != nil:
		return err
	default:
		for _, s := range plan.Plan {
			e.printf("defragment plan: %s", s)
		}
	}
	req := maintenance.DefragmentRequest{MoveLeader: true, AllowSingleMember: e.embedded}
	rep, err := m.Defragment(ctx, req)
	if err != nil {
		if errors.Is(err, maintenance.ErrQuorum) || errors.Is(err, maintenance.ErrUnhealthy) {
			e.printf("not defragmenting this cluster: %v", err)
			return nil
		}
		return err
	}
	for _, md := range rep.Members {
		e.printf("defragmented %s: %d -> %d bytes in %v", md.Name, md.DBSizeBefore, md.DBSizeAfter, md.Duration)
	}
	return nil
}
