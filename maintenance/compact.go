package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// CompactRequest describes one compaction. Exactly one of KeepRevisions and
// KeepNewerThan is set.
type CompactRequest struct {
	// KeepRevisions keeps the last N revisions (the current one included) and discards
	// the history before them.
	KeepRevisions int64 `json:"keepRevisions,omitempty"`
	// KeepNewerThan keeps every revision written within this duration. etcd does not
	// record when a revision was written, so this needs the revision marks Mark writes:
	// the compaction goes to the newest mark at least this old, or fails with ErrNoMark.
	KeepNewerThan time.Duration `json:"keepNewerThan,omitempty"`
	// Physical waits until the compaction is applied to the backend of every member, so
	// a defragmentation that follows can give the space back at once.
	Physical bool `json:"physical,omitempty"`
	DryRun   bool `json:"dryRun,omitempty"`
}

// CompactReport is the outcome of Compact.
type CompactReport struct {
	DryRun bool   `json:"dryRun"`
	Plan   []Step `json:"plan"`
	// Revision is the current revision when the compaction was planned.
	Revision int64 `json:"revision"`
	// CompactRevision is the revision compacted to: every revision before it is gone.
	// Zero when there is nothing to compact.
	CompactRevision int64 `json:"compactRevision"`
	// MarkTime is when the mark used for KeepNewerThan was written.
	MarkTime time.Time `json:"markTime,omitzero"`
	// AlreadyCompacted is set when the history was already compacted at or beyond
	// CompactRevision; nothing was done.
	AlreadyCompacted bool          `json:"alreadyCompacted,omitempty"`
	Physical         bool          `json:"physical"`
	Duration         time.Duration `json:"duration"`
}

// Compact discards the history older than the request keeps. It needs a cluster with
// quorum and a leader (ErrUnhealthy otherwise); alarms do not block it, since compacting
// is the first step out of NOSPACE. A compaction to a revision already compacted is not
// an error: the report says AlreadyCompacted.
func (m *Maintainer) Compact(ctx context.Context, req CompactRequest) (*CompactReport, error) {
	start := time.Now()
	switch {
	case req.KeepRevisions < 0:
		return nil, fmt.Errorf("%w: keep revisions %d must not be negative", ErrInvalidArgument, req.KeepRevisions)
	case req.KeepNewerThan < 0:
		return nil, fmt.Errorf("%w: keep newer than %v must not be negative", ErrInvalidArgument, req.KeepNewerThan)
	case (req.KeepRevisions > 0) == (req.KeepNewerThan > 0):
		return nil, fmt.Errorf("%w: exactly one of keep revisions and keep newer than must be set", ErrInvalidArgument)
	}
	rep := &CompactReport{DryRun: req.DryRun, Plan: []Step{}, Physical: req.Physical}
	finish := func(err error) (*CompactReport, error) {
		rep.Duration = since(start)
		return rep, err
	}
	r, err := m.check(ctx)
	if err != nil {
		return finish(err)
	}
	if !r.Quorum.HasQuorum || r.Leader.ID == 0 {
		return finish(fmt.Errorf("%w: no quorum or no leader: a compaction goes through raft", ErrUnhealthy))
	}
	cur, err := m.cli.Get(ctx, m.opts.markPrefix, clientv3.WithCountOnly())
	if err != nil {
		return finish(fmt.Errorf("maintenance: current revision: %w", err))
	}
	rep.Revision = cur.Header.Revision

	if req.KeepRevisions > 0 {
		rep.CompactRevision = max(rep.Revision-req.KeepRevisions+1, 0)
	} else {
		mk, err := m.markBefore(ctx, time.Now().Add(-req.KeepNewerThan))
		if err != nil {
			return finish(err)
		}
		rep.CompactRevision, rep.MarkTime = mk.Revision, mk.Time
	}
	if rep.CompactRevision <= 1 {
		rep.CompactRevision = 0
		return finish(nil) // nothing older than what is kept
	}
	rep.Plan = append(rep.Plan, Step{Action: "compact", Detail: fmt.Sprintf("to revision %d of %d (physical: %v)", rep.CompactRevision, rep.Revision, req.Physical)})
	if req.DryRun {
		return finish(nil)
	}
	var opts []clientv3.CompactOption
	if req.Physical {
		opts = append(opts, clientv3.WithCompactPhysical())
	}
	m.opts.logger.Info("compacting", zap.Int64("revision", rep.CompactRevision), zap.Int64("current", rep.Revision), zap.Bool("physical", req.Physical))
	if _, err := m.cli.Compact(ctx, rep.CompactRevision, opts...); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			rep.AlreadyCompacted = true
			return finish(nil)
		}
		return finish(fmt.Errorf("maintenance: compact to %d: %w", rep.CompactRevision, err))
	}
	if req.KeepNewerThan > 0 {
		m.pruneMarks(ctx, rep.CompactRevision)
	}
	return finish(nil)
}

// RevisionMark records that the cluster was at Revision at Time.
type RevisionMark struct {
	Time     time.Time `json:"time"`
	Revision int64     `json:"revision"`
}

// Mark records the cluster's current revision and time under the mark prefix, so that a
// later Compact can keep "everything newer than a duration". Call it regularly (the
// period is the precision of such compactions), for example from the loop that checks
// health. Each mark is one small key; Compact deletes the marks it has passed. A mark
// carries the clock of the process that wrote it, and Compact compares it with its own:
// keep the clocks of both in sync (NTP), or call both from one process.
func (m *Maintainer) Mark(ctx context.Context) (RevisionMark, error) {
	now := time.Now().UTC()
	key := m.markKey(now)
	resp, err := m.cli.Put(ctx, key, now.Format(time.RFC3339Nano))
	if err != nil {
		return RevisionMark{}, fmt.Errorf("maintenance: mark: %w", err)
	}
	return RevisionMark{Time: now, Revision: resp.Header.Revision}, nil
}

// Marks returns the revision marks, oldest first.
func (m *Maintainer) Marks(ctx context.Context) ([]RevisionMark, error) {
	resp, err := m.cli.Get(ctx, m.opts.markPrefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("maintenance: marks: %w", err)
	}
	out := make([]RevisionMark, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ns, err := strconv.ParseInt(string(kv.Key[len(m.opts.markPrefix):]), 10, 64)
		if err != nil {
			continue // not ours
		}
		out = append(out, RevisionMark{Time: time.Unix(0, ns).UTC(), Revision: kv.CreateRevision})
	}
	return out, nil
}

// markBefore returns the newest mark written at or before t.
func (m *Maintainer) markBefore(ctx context.Context, t time.Time) (RevisionMark, error) {
	marks, err := m.Marks(ctx)
	if err != nil {
		return RevisionMark{}, err
	}
	for i := len(marks) - 1; i >= 0; i-- {
		if !marks[i].Time.After(t) {
			return marks[i], nil
		}
	}
	if len(marks) == 0 {
		return RevisionMark{}, fmt.Errorf("%w: no marks under %q (call Mark regularly)", ErrNoMark, m.opts.markPrefix)
	}
	return RevisionMark{}, fmt.Errorf("%w: the oldest mark is from %s, after %s", ErrNoMark, marks[0].Time.Format(time.RFC3339), t.UTC().Format(time.RFC3339))
}

// pruneMarks deletes the marks older than the newest one at or before rev: the
// history they point into is gone. A failure only leaves a few extra keys, so it is
// logged, not returned.
func (m *Maintainer) pruneMarks(ctx context.Context, rev int64) {
	marks, err := m.Marks(ctx)
	if err != nil {
		return
	}
	keep := -1
	for i, mk := range marks {
		if mk.Revision <= rev {
			keep = i
		}
	}
	if keep <= 0 {
		return
	}
	end := m.markKey(marks[keep].Time)
	if _, err := m.cli.Delete(ctx, m.opts.markPrefix, clientv3.WithRange(end)); err != nil {
		m.opts.logger.Warn("pruning revision marks", zap.String("before", end), zap.Error(err))
	}
}

func (m *Maintainer) markKey(t time.Time) string {
	return m.opts.markPrefix + fmt.Sprintf("%020d", t.UnixNano())
}

// PruneMarks deletes the revision marks written before t, so that a process calling Mark
// regularly keeps a bounded number of them (one key per call within the age it keeps);
// Compact's KeepNewerThan cannot reach further back than the oldest mark left. It
// returns the number of marks deleted.
func (m *Maintainer) PruneMarks(ctx context.Context, t time.Time) (int64, error) {
	resp, err := m.cli.Delete(ctx, m.opts.markPrefix, clientv3.WithRange(m.markKey(t)))
	if err != nil {
		return 0, fmt.Errorf("maintenance: prune marks: %w", err)
	}
	return resp.Deleted, nil
}
