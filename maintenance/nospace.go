package maintenance

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// NoSpaceRequest describes a recovery from a NOSPACE alarm: compact, defragment,
// disarm.
type NoSpaceRequest struct {
	// KeepRevisions is the history the compaction keeps (the last N revisions).
	// Default DefaultNoSpaceKeepRevisions.
	KeepRevisions int64 `json:"keepRevisions,omitempty"`
	// MaxUsage and QuotaBytes are DisarmRequest's: the share of its quota every member
	// must be under before the alarm is disarmed (default 0.8), and the quota of members
	// that do not report theirs.
	MaxUsage   float64 `json:"maxUsage,omitempty"`
	QuotaBytes int64   `json:"quotaBytes,omitempty"`
	// MoveLeader and AllowSingleMember are DefragmentRequest's.
	MoveLeader        bool `json:"moveLeader,omitempty"`
	AllowSingleMember bool `json:"allowSingleMember,omitempty"`
	DryRun            bool `json:"dryRun,omitempty"`
	// Progress is DefragmentRequest's: called after each member's defragmentation.
	Progress func(MemberDefrag) `json:"-"`
}

// DefaultNoSpaceKeepRevisions is the history a NOSPACE recovery keeps by default.
const DefaultNoSpaceKeepRevisions = 1000

// NoSpaceReport is the outcome of RecoverNoSpace: the reports of the steps it took, as
// far as it got.
type NoSpaceReport struct {
	DryRun bool   `json:"dryRun"`
	Plan   []Step `json:"plan"`
	// Alarms are the NOSPACE alarms found at the start; none means nothing was done.
	Alarms     []Alarm           `json:"alarms"`
	Compact    *CompactReport    `json:"compact,omitempty"`
	Defragment *DefragmentReport `json:"defragment,omitempty"`
	Disarm     *DisarmReport     `json:"disarm,omitempty"`
	Duration   time.Duration     `json:"duration"`
}

// RecoverNoSpace takes a cluster out of NOSPACE the documented way: Compact (keeping
// KeepRevisions, physically), Defragment (one member at a time, the leader last), then
// DisarmNoSpace, which disarms only once every member is under MaxUsage of its quota.
// Each step keeps its own guard; the first that fails ends the run, and its error is
// returned with the report of the steps so far. When the space the history held is not
// enough — the live data itself fills the quota — the last step fails with ErrOverQuota
// and the alarm stays: that needs a person (delete data, or raise the quota). Without a
// NOSPACE alarm it does nothing and returns no error. A dry run returns the plan: the
// compaction and the defragmentation as planned now, and the disarm it would try.
func (m *Maintainer) RecoverNoSpace(ctx context.Context, req NoSpaceRequest) (*NoSpaceReport, error) {
	start := time.Now()
	switch {
	case req.KeepRevisions < 0:
		return nil, fmt.Errorf("%w: keep revisions %d must not be negative", ErrInvalidArgument, req.KeepRevisions)
	case req.MaxUsage < 0 || req.MaxUsage > 1:
		return nil, fmt.Errorf("%w: max usage %v must be between 0 and 1", ErrInvalidArgument, req.MaxUsage)
	case req.QuotaBytes < 0:
		return nil, fmt.Errorf("%w: quota bytes %d must not be negative", ErrInvalidArgument, req.QuotaBytes)
	}
	if req.KeepRevisions == 0 {
		req.KeepRevisions = DefaultNoSpaceKeepRevisions
	}
	if req.MaxUsage == 0 {
		req.MaxUsage = DefaultMaxUsage
	}
	rep := &NoSpaceReport{DryRun: req.DryRun, Plan: []Step{}, Alarms: []Alarm{}}
	finish := func(err error) (*NoSpaceReport, error) {
		rep.Duration = since(start)
		return rep, err
	}
	ar, err := m.Alarms(ctx)
	if err != nil {
		return finish(err)
	}
	for _, a := range ar.Alarms {
		if a.Type == pb.AlarmType_NOSPACE.String() {
			rep.Alarms = append(rep.Alarms, a)
		}
	}
	if len(rep.Alarms) == 0 {
		return finish(nil)
	}
	m.opts.logger.Info("recovering from NOSPACE", zap.Int("alarms", len(rep.Alarms)), zap.Int64("keepRevisions", req.KeepRevisions), zap.Bool("dryRun", req.DryRun))

	rep.Compact, err = m.Compact(ctx, CompactRequest{KeepRevisions: req.KeepRevisions, Physical: true, DryRun: req.DryRun})
	if rep.Compact != nil {
		rep.Plan = append(rep.Plan, rep.Compact.Plan...)
	}
	if err != nil {
		return finish(fmt.Errorf("compact: %w", err))
	}
	rep.Defragment, err = m.Defragment(ctx, DefragmentRequest{DryRun: req.DryRun, MoveLeader: req.MoveLeader,
		AllowSingleMember: req.AllowSingleMember, Progress: req.Progress})
	if rep.Defragment != nil {
		rep.Plan = append(rep.Plan, rep.Defragment.Plan...)
	}
	if err != nil {
		return finish(fmt.Errorf("defragment: %w", err))
	}
	if req.DryRun {
		// The space is not freed in a dry run, so the disarm's guard would refuse now.
		for _, a := range rep.Alarms {
			rep.Plan = append(rep.Plan, Step{Action: "disarm", MemberID: a.MemberID, Member: a.MemberName,
				Detail: fmt.Sprintf("%s, once every member is under %.0f%% of its quota", a.Type, 100*req.MaxUsage)})
		}
		return finish(nil)
	}
	rep.Disarm, err = m.DisarmNoSpace(ctx, DisarmRequest{MaxUsage: req.MaxUsage, QuotaBytes: req.QuotaBytes})
	if rep.Disarm != nil {
		rep.Plan = append(rep.Plan, rep.Disarm.Plan...)
	}
	if err != nil {
		return finish(fmt.Errorf("disarm: %w", err))
	}
	return finish(nil)
}
