package maintenance

import (
	"context"
	"fmt"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// MoveLeaderRequest describes a leadership transfer.
type MoveLeaderRequest struct {
	// To is the voting member to hand leadership to; 0 picks the reachable follower
	// whose raft log is the most complete (by name on a tie).
	To     health.ID `json:"to,omitempty"`
	DryRun bool      `json:"dryRun,omitempty"`
}

// MoveLeaderReport is the outcome of MoveLeader.
type MoveLeaderReport struct {
	DryRun   bool      `json:"dryRun"`
	Plan     []Step    `json:"plan"`
	From     health.ID `json:"from"`
	FromName string    `json:"fromName"`
	To       health.ID `json:"to"`
	ToName   string    `json:"toName"`
	// AlreadyLeader is set when To led already; nothing was done.
	AlreadyLeader bool          `json:"alreadyLeader,omitempty"`
	Duration      time.Duration `json:"duration"`
}

// MoveLeader hands leadership to another voting member and waits (at most the settle
// timeout) until the cluster agrees on it. It refuses with ErrUnhealthy when the
// cluster is degraded or the target cannot lead (a learner, unreachable, without a
// leader), and returns ErrNotFound for an unknown member.
func (m *Maintainer) MoveLeader(ctx context.Context, req MoveLeaderRequest) (*MoveLeaderReport, error) {
	start := time.Now()
	rep := &MoveLeaderReport{DryRun: req.DryRun, Plan: []Step{}}
	finish := func(err error) (*MoveLeaderReport, error) {
		rep.Duration = since(start)
		return rep, err
	}
	r, err := m.check(ctx)
	if err != nil {
		return finish(err)
	}
	if err := degraded(r, 0); err != nil {
		return finish(err)
	}
	rep.From, rep.FromName = r.Leader.ID, r.Leader.Name
	to := req.To
	if to == 0 {
		if to = bestFollower(r); to == 0 {
			return finish(fmt.Errorf("%w: no follower can take over leadership", ErrUnhealthy))
		}
	}
	target, err := find(r, to)
	if err != nil {
		return finish(err)
	}
	rep.To, rep.ToName = to, target.Name
	if to == r.Leader.ID {
		rep.AlreadyLeader = true
		return finish(nil)
	}
	if err := canLead(target); err != nil {
		return finish(err)
	}
	rep.Plan = append(rep.Plan, Step{Action: "move-leader", MemberID: to, Member: target.Name, Detail: "from " + r.Leader.Name})
	if req.DryRun {
		return finish(nil)
	}
	if err := m.moveLeader(ctx, r, to); err != nil {
		return finish(err)
	}
	_, err = m.settle(ctx, func(r *health.Report) error {
		if r.Leader.ID != to {
			return fmt.Errorf("%w: leader is %s, not %s", ErrUnhealthy, r.Leader.Name, target.Name)
		}
		return degraded(r, 0)
	})
	return finish(err)
}

func canLead(ms health.MemberStatus) error {
	switch {
	case ms.Member.IsLearner:
		return fmt.Errorf("%w: %s (%x) is a learner and cannot lead", ErrUnhealthy, ms.Name, ms.Member.ID)
	case !ms.Reachable:
		return fmt.Errorf("%w: %s (%x) is unreachable: %s", ErrUnhealthy, ms.Name, ms.Member.ID, ms.Error)
	case ms.Status.Leader == 0:
		return fmt.Errorf("%w: %s (%x) sees no leader", ErrUnhealthy, ms.Name, ms.Member.ID)
	}
	return nil
}

// bestFollower is the reachable voting follower with the highest raft index.
func bestFollower(r *health.Report) health.ID {
	var best *health.MemberStatus
	for i := range r.Members {
		ms := &r.Members[i]
		if ms.Member.ID == r.Leader.ID || canLead(*ms) != nil {
			continue
		}
		if best == nil || ms.RaftIndex > best.RaftIndex || (ms.RaftIndex == best.RaftIndex && strings.Compare(ms.Name, best.Name) < 0) {
			best = ms
		}
	}
	if best == nil {
		return 0
	}
	return best.Member.ID
}

// moveLeader asks the current leader (only a leader accepts the request) to transfer
// leadership to member to.
func (m *Maintainer) moveLeader(ctx context.Context, r *health.Report, to health.ID) error {
	leader, err := find(r, r.Leader.ID)
	if err != nil {
		return err
	}
	conn, err := m.cli.Dial(leader.Endpoint)
	if err != nil {
		return fmt.Errorf("dial leader %s: %w", leader.Name, err)
	}
	defer conn.Close()
	m.opts.logger.Info("moving leadership", zap.String("from", leader.Name), zap.String("to", nameOf(r, to)))
	mc := clientv3.NewMaintenanceFromMaintenanceClient(pb.NewMaintenanceClient(conn), m.cli)
	if _, err := mc.MoveLeader(ctx, uint64(to)); err != nil {
		return fmt.Errorf("move leader from %s: %w", leader.Name, err)
	}
	return nil
}
