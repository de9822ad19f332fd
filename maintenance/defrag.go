package maintenance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// DefragmentRequest describes one defragmentation of the cluster.
type DefragmentRequest struct {
	// DryRun checks the guard and returns the plan without defragmenting anything.
	DryRun bool `json:"dryRun,omitempty"`
	// Members limits the run to these member IDs. Default: every member.
	Members []health.ID `json:"members,omitempty"`
	// MoveLeader moves leadership to an already defragmented voting member before the
	// leader's turn, so the leader is never the member that pauses.
	MoveLeader bool `json:"moveLeader,omitempty"`
	// AllowSingleMember defragments a cluster of one voting member, which cannot serve
	// while it does. Without it such a cluster is refused with ErrQuorum.
	AllowSingleMember bool `json:"allowSingleMember,omitempty"`
	// MemberTimeout bounds each member's defragmentation. Default 5 minutes.
	MemberTimeout time.Duration `json:"memberTimeout,omitempty"`
	// Progress, when set, is called on the caller's goroutine after each member, with
	// that member's outcome. It must not block for long: the next member waits for it.
	Progress func(MemberDefrag) `json:"-"`
}

// DefaultMemberTimeout bounds one member's defragmentation.
const DefaultMemberTimeout = 5 * time.Minute

// Outcomes of one member in a DefragmentReport.
const (
	StatePending = "pending" // not reached (a dry run, or the run aborted first)
	StateDone    = "done"
	StateFailed  = "failed"
)

// MemberDefrag is one member's part of a defragmentation.
type MemberDefrag struct {
	ID       health.ID `json:"id"`
	Name     string    `json:"name"`
	Endpoint string    `json:"endpoint"`
	Learner  bool      `json:"learner,omitempty"`
	// WasLeader is true when the member led the cluster when its turn came.
	WasLeader bool   `json:"wasLeader,omitempty"`
	State     string `json:"state"`
	// DBSizeBefore and DBSizeAfter are the member's database file sizes; DBSizeInUse is
	// the logical size before (what a defragmentation can shrink the file to).
	DBSizeBefore int64         `json:"dbSizeBefore"`
	DBSizeInUse  int64         `json:"dbSizeInUse"`
	DBSizeAfter  int64         `json:"dbSizeAfter,omitempty"`
	Started      time.Time     `json:"started,omitzero"`
	Duration     time.Duration `json:"duration,omitempty"`
	Error        string        `json:"error,omitempty"`
}

// DefragmentReport is the outcome of Defragment. Members lists every planned member in
// the order they were (or would be) done.
type DefragmentReport struct {
	DryRun  bool           `json:"dryRun"`
	Plan    []Step         `json:"plan"`
	Members []MemberDefrag `json:"members"`
	// LeaderMovedTo is the member leadership was moved to before the leader's turn.
	LeaderMovedTo health.ID `json:"leaderMovedTo,omitempty"`
	// Aborted is set when the run stopped before the end, or was refused before the
	// first member; Reason says why.
	Aborted  bool          `json:"aborted"`
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Freed is the number of bytes the run gave back, over the members that are done.
func (r *DefragmentReport) Freed() int64 {
	var n int64
	for _, m := range r.Members {
		if m.State == StateDone {
			n += m.DBSizeBefore - m.DBSizeAfter
		}
	}
	return n
}

// Defragment defragments members one at a time: learners, then followers, the leader
// last. Before each member it waits (at most the settle timeout) until the cluster is
// healthy and keeps a quorum while that member pauses; when it does not, or a member's
// defragmentation fails, it stops and returns the report with an error matching
// ErrAborted. A cluster that fails the guard before the first member is refused with
// ErrUnhealthy or ErrQuorum. NOSPACE alarms do not block it: freeing space is its point.
//
// Only one defragmentation runs at a time through a Maintainer; another one started
// meanwhile (a dry run excepted) returns ErrBusy at once.
//
// The report is returned with every error except ErrInvalidArgument and ErrBusy.
func (m *Maintainer) Defragment(ctx context.Context, req DefragmentRequest) (*DefragmentReport, error) {
	start := time.Now()
	if !req.DryRun {
		if !m.defrag.TryLock() {
			return nil, ErrBusy
		}
		defer m.defrag.Unlock()
	}
	if req.MemberTimeout < 0 {
		return nil, fmt.Errorf("%w: member timeout %v must not be negative", ErrInvalidArgument, req.MemberTimeout)
	}
	if req.MemberTimeout == 0 {
		req.MemberTimeout = DefaultMemberTimeout
	}
	rep := &DefragmentReport{DryRun: req.DryRun, Plan: []Step{}, Members: []MemberDefrag{}}
	finish := func(err error) (*DefragmentReport, error) {
		rep.Duration = since(start)
		return rep, err
	}

	r, err := m.check(ctx)
	if err != nil {
		return finish(err)
	}
	for _, id := range req.Members {
		if _, err := find(r, id); err != nil {
			return nil, fmt.Errorf("%w: members: %w", ErrInvalidArgument, err)
		}
	}
	rep.Members = planDefrag(r, req.Members)
	rep.Plan = defragSteps(rep.Members, r.Leader.ID, req.MoveLeader)
	if err := m.defragGuard(r, nil, req); err != nil {
		rep.Aborted, rep.Reason = true, err.Error()
		return finish(err)
	}
	if req.DryRun {
		return finish(nil)
	}
	rep.Plan = rep.Plan[:0]

	for done := 0; done < len(rep.Members); done++ {
		if done > 0 {
			if r, err = m.settle(ctx, func(r *health.Report) error { return m.defragGuard(r, nil, req) }); err != nil {
				return m.abort(rep, finish, err)
			}
		}
		// The next member: the first pending one that does not lead now; the leader only
		// when it is the last one left.
		next := -1
		for i := done; i < len(rep.Members); i++ {
			if rep.Members[i].ID != r.Leader.ID {
				next = i
				break
			}
		}
		if next < 0 {
			next = done
		}
		// Keep Members in the order the members are done.
		mem := rep.Members[next]
		copy(rep.Members[done+1:next+1], rep.Members[done:next])
		rep.Members[done] = mem
		md := &rep.Members[done]

		if md.ID == r.Leader.ID && req.MoveLeader {
			to := moveTarget(r, rep.Members[:done])
			if to != 0 {
				rep.Plan = append(rep.Plan, Step{Action: "move-leader", MemberID: to, Member: nameOf(r, to), Detail: fmt.Sprintf("away from %s before its defragmentation", md.Name)})
				if err := m.moveLeader(ctx, r, to); err != nil {
					return m.abort(rep, finish, fmt.Errorf("move leader to %x: %w", to, err))
				}
				rep.LeaderMovedTo = to
				if r, err = m.settle(ctx, func(r *health.Report) error {
					if r.Leader.ID == md.ID {
						return fmt.Errorf("%w: %s still leads", ErrUnhealthy, md.Name)
					}
					return m.defragGuard(r, nil, req)
				}); err != nil {
					return m.abort(rep, finish, err)
				}
			}
		}
		if err := m.defragGuard(r, md, req); err != nil {
			return m.abort(rep, finish, err)
		}
		ms, found := r.Member(md.ID)
		if !found {
			return m.abort(rep, finish, fmt.Errorf("%w: %s (%x) left the cluster", ErrNotFound, md.Name, md.ID))
		}
		md.WasLeader = md.ID == r.Leader.ID
		md.DBSizeBefore, md.DBSizeInUse, md.Endpoint = ms.DBSize, ms.DBSizeInUse, ms.Endpoint
		rep.Plan = append(rep.Plan, Step{Action: "defragment", MemberID: md.ID, Member: md.Name, Detail: roleOf(md.Learner, md.WasLeader)})

		m.opts.logger.Info("defragmenting member", zap.String("member", md.Name), zap.String("endpoint", md.Endpoint),
			zap.Bool("leader", md.WasLeader), zap.Int64("dbSize", md.DBSizeBefore), zap.Int64("dbSizeInUse", md.DBSizeInUse))
		md.Started = time.Now()
		dctx, cancel := context.WithTimeout(ctx, req.MemberTimeout)
		_, err := m.cli.Defragment(dctx, md.Endpoint)
		cancel()
		md.Duration = since(md.Started)
		if err != nil {
			md.State, md.Error = StateFailed, err.Error()
			m.progress(req, *md)
			if ctx.Err() != nil {
				return m.abort(rep, finish, ctx.Err())
			}
			return m.abort(rep, finish, fmt.Errorf("defragment %s: %w", md.Name, err))
		}
		md.State = StateDone
		if st, err := m.cli.Status(ctx, md.Endpoint); err == nil {
			md.DBSizeAfter = st.DbSize
		}
		m.opts.logger.Info("member defragmented", zap.String("member", md.Name),
			zap.Int64("dbSizeBefore", md.DBSizeBefore), zap.Int64("dbSizeAfter", md.DBSizeAfter), zap.Duration("took", md.Duration))
		m.progress(req, *md)
	}
	return finish(nil)
}

func (m *Maintainer) progress(req DefragmentRequest, md MemberDefrag) {
	if req.Progress != nil {
		req.Progress(md)
	}
}

// abort records why a run stopped and wraps err with ErrAborted.
func (m *Maintainer) abort(rep *DefragmentReport, finish func(error) (*DefragmentReport, error), err error) (*DefragmentReport, error) {
	rep.Aborted = true
	rep.Reason = err.Error()
	m.opts.logger.Warn("defragmentation aborted", zap.Error(err))
	return finish(fmt.Errorf("%w: %w", ErrAborted, err))
}

// defragGuard says whether member target (nil: any member of the run) may pause now.
func (m *Maintainer) defragGuard(r *health.Report, target *MemberDefrag, req DefragmentRequest) error {
	if err := degraded(r, 0); err != nil {
		return err
	}
	if r.Quorum.Voters == 1 {
		if req.AllowSingleMember {
			return nil
		}
		return fmt.Errorf("%w: the only voting member cannot be defragmented without stopping the cluster (set AllowSingleMember to do it anyway)", ErrQuorum)
	}
	if target != nil && target.Learner {
		return nil // a learner does not vote
	}
	if r.Quorum.Healthy-1 < r.Quorum.Size {
		return fmt.Errorf("%w: %d of %d voting members healthy; pausing one would leave %d, and a quorum needs %d",
			ErrQuorum, r.Quorum.Healthy, r.Quorum.Voters, r.Quorum.Healthy-1, r.Quorum.Size)
	}
	return nil
}

// planDefrag orders the members: learners, then followers, each by name, the leader last.
func planDefrag(r *health.Report, only []health.ID) []MemberDefrag {
	out := []MemberDefrag{}
	for _, ms := range r.Members {
		if len(only) > 0 && !slices.Contains(only, ms.Member.ID) {
			continue
		}
		out = append(out, MemberDefrag{ID: ms.Member.ID, Name: ms.Name, Endpoint: ms.Endpoint, Learner: ms.Member.IsLearner,
			WasLeader: ms.Member.ID == r.Leader.ID, State: StatePending, DBSizeBefore: ms.DBSize, DBSizeInUse: ms.DBSizeInUse})
	}
	rank := func(md MemberDefrag) int {
		switch {
		case md.Learner:
			return 0
		case md.WasLeader:
			return 2
		}
		return 1
	}
	slices.SortStableFunc(out, func(a, b MemberDefrag) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

func defragSteps(ms []MemberDefrag, leader health.ID, moveLeader bool) []Step {
	steps := make([]Step, 0, len(ms)+1)
	for _, md := range ms {
		if md.ID == leader && moveLeader && len(ms) > 1 {
			steps = append(steps, Step{Action: "move-leader", Detail: fmt.Sprintf("away from %s to a defragmented voting member", md.Name)})
		}
		steps = append(steps, Step{Action: "defragment", MemberID: md.ID, Member: md.Name,
			Detail: fmt.Sprintf("%s, %d bytes, %d in use", roleOf(md.Learner, md.WasLeader), md.DBSizeBefore, md.DBSizeInUse)})
	}
	return steps
}

func roleOf(learner, leader bool) string {
	switch {
	case learner:
		return "learner"
	case leader:
		return "leader"
	}
	return "follower"
}

// moveTarget picks the voting member to hand leadership to: a healthy one already
// defragmented, else any healthy follower.
func moveTarget(r *health.Report, done []MemberDefrag) health.ID {
	ok := func(id health.ID) bool {
		ms, found := r.Member(id)
		return found && ms.Reachable && !ms.Member.IsLearner && id != r.Leader.ID && ms.Status.Leader != 0
	}
	for _, md := range done {
		if ok(md.ID) {
			return md.ID
		}
	}
	for _, ms := range r.Members {
		if ok(ms.Member.ID) {
			return ms.Member.ID
		}
	}
	return 0
}

func nameOf(r *health.Report, id health.ID) string {
	ms, _ := r.Member(id)
	return ms.Name
}
