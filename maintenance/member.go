package maintenance

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// Member is one member as Members lists it.
type Member struct {
	ID         health.ID `json:"id"`
	Name       string    `json:"name"`
	PeerURLs   []string  `json:"peerURLs"`
	ClientURLs []string  `json:"clientURLs"`
	Learner    bool      `json:"learner"`
	Leader     bool      `json:"leader"`
	Reachable  bool      `json:"reachable"`
	Version    string    `json:"version,omitempty"`
	DBSize     int64     `json:"dbSize,omitempty"`
	RaftIndex  uint64    `json:"raftIndex,omitempty"`
	RaftTerm   uint64    `json:"raftTerm,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// MemberList is the outcome of Members.
type MemberList struct {
	Members []Member `json:"members"`
	// Healthy is the health checker's verdict on the whole cluster.
	Healthy bool `json:"healthy"`
}

// Members lists the members with each one's state. A member not started yet (added
// but never joined) has no name and is unreachable.
func (m *Maintainer) Members(ctx context.Context) (*MemberList, error) {
	r, err := m.check(ctx)
	if err != nil {
		return nil, err
	}
	out := &MemberList{Members: make([]Member, 0, len(r.Members)), Healthy: r.Healthy}
	for _, ms := range r.Members {
		out.Members = append(out.Members, Member{ID: ms.Member.ID, Name: ms.Name, PeerURLs: ms.PeerURLs, ClientURLs: ms.ClientURLs,
			Learner: ms.Member.IsLearner, Leader: ms.Member.ID == r.Leader.ID, Reachable: ms.Reachable, Version: ms.Version,
			DBSize: ms.DBSize, RaftIndex: ms.RaftIndex, RaftTerm: ms.RaftTerm, Error: ms.Error})
	}
	return out, nil
}

// MemberReport is the outcome of AddLearner, Promote and Remove.
type MemberReport struct {
	DryRun bool   `json:"dryRun"`
	Plan   []Step `json:"plan"`
	// MemberID is the member added, promoted or removed (0 for a dry-run add: etcd
	// assigns the ID).
	MemberID health.ID `json:"memberID"`
	// InitialCluster is, after AddLearner, the --initial-cluster value to start the new
	// member with (its own entry named NAME: replace it with the member's --name).
	InitialCluster string `json:"initialCluster,omitempty"`
	// Voters and QuorumAfter describe the voting members once the change is made.
	Voters      int           `json:"voters"`
	QuorumAfter int           `json:"quorumAfter"`
	Duration    time.Duration `json:"duration"`
}

// AddRequest describes a new member.
type AddRequest struct {
	// PeerURLs are the new member's peer URLs; at least one is required.
	PeerURLs []string `json:"peerURLs"`
	DryRun   bool     `json:"dryRun,omitempty"`
}

// AddLearner adds a member as a learner: it receives the log but does not vote, so
// adding it never changes the quorum, and a learner that never starts costs nothing.
// Start it with the report's InitialCluster and --initial-cluster-state=existing, then
// Promote it once it has caught up. Refused with ErrUnhealthy when the cluster stays
// degraded for the settle timeout (WithSettleTimeout): a leader election or a
// membership change just made is waited out.
func (m *Maintainer) AddLearner(ctx context.Context, req AddRequest) (*MemberReport, error) {
	start := time.Now()
	if len(req.PeerURLs) == 0 {
		return nil, fmt.Errorf("%w: no peer URLs", ErrInvalidArgument)
	}
	for _, u := range req.PeerURLs {
		if p, err := url.Parse(u); err != nil || p.Host == "" || !slices.Contains([]string{"http", "https", "unix", "unixs"}, p.Scheme) {
			return nil, fmt.Errorf("%w: peer URL %q is not http(s)://host:port (or unix(s)://)", ErrInvalidArgument, u)
		}
	}
	rep := &MemberReport{DryRun: req.DryRun, Plan: []Step{}}
	finish := func(err error) (*MemberReport, error) {
		rep.Duration = since(start)
		return rep, err
	}
	// A membership change just made, a leader just elected: wait them out (a dry run
	// looks once).
	guard := func(r *health.Report) error {
		if err := degraded(r, 0); err != nil {
			return err
		}
		return m.sameMembers(ctx, r)
	}
	var (
		r   *health.Report
		err error
	)
	if req.DryRun {
		if r, err = m.check(ctx); err == nil {
			err = guard(r)
		}
	} else {
		r, err = m.settle(ctx, guard)
	}
	if err != nil {
		return finish(err)
	}
	rep.Voters, rep.QuorumAfter = r.Quorum.Voters, r.Quorum.Size
	rep.Plan = append(rep.Plan, Step{Action: "add-learner", Detail: strings.Join(req.PeerURLs, ",")})
	if req.DryRun {
		return finish(nil)
	}
	var resp *clientv3.MemberAddResponse
	err = m.whileEtcdUnhealthy(ctx, func() (err error) {
		resp, err = m.cli.MemberAddAsLearner(ctx, req.PeerURLs)
		return err
	})
	if errors.Is(err, rpctypes.ErrUnhealthy) {
		return finish(fmt.Errorf("%w: add learner: %w", ErrUnhealthy, err))
	}
	if err != nil {
		return finish(fmt.Errorf("maintenance: add learner: %w", err))
	}
	rep.MemberID = health.ID(resp.Member.ID)
	var parts []string
	for _, mem := range resp.Members {
		name := mem.Name
		if mem.ID == resp.Member.ID || name == "" {
			if mem.ID != resp.Member.ID {
				continue // another member that has not started: it has no name to list
			}
			name = "NAME"
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	rep.InitialCluster = strings.Join(parts, ",")
	m.opts.logger.Info("learner added", zap.String("id", rep.MemberID.Hex()), zap.Strings("peerURLs", req.PeerURLs))
	return finish(nil)
}

// PromoteRequest describes the promotion of a learner.
type PromoteRequest struct {
	ID health.ID `json:"id"`
	// Timeout bounds the wait for the learner to catch up. Default 1 minute.
	Timeout time.Duration `json:"timeout,omitempty"`
	DryRun  bool          `json:"dryRun,omitempty"`
}

// DefaultPromoteTimeout bounds the wait for a learner to catch up.
const DefaultPromoteTimeout = time.Minute

// Promote makes a learner a voting member once it has caught up with the leader: it
// waits (at most Timeout) until the learner answers and etcd accepts the promotion,
// which etcd does only when the learner's log is close to the leader's, and returns
// ErrNotCaughtUp if that does not happen in time (wrapping the last reason: the learner
// unreachable, the cluster degraded, etcd's "not in sync"). Refused with ErrQuorum when the healthy voters and the learner would not make
// the new quorum.
func (m *Maintainer) Promote(ctx context.Context, req PromoteRequest) (*MemberReport, error) {
	start := time.Now()
	if req.ID == 0 {
		return nil, fmt.Errorf("%w: no member ID", ErrInvalidArgument)
	}
	if req.Timeout < 0 {
		return nil, fmt.Errorf("%w: timeout %v must not be negative", ErrInvalidArgument, req.Timeout)
	}
	if req.Timeout == 0 {
		req.Timeout = DefaultPromoteTimeout
	}
	rep := &MemberReport{DryRun: req.DryRun, Plan: []Step{}, MemberID: req.ID}
	finish := func(err error) (*MemberReport, error) {
		rep.Duration = since(start)
		return rep, err
	}
	pctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	var (
		waitErr   error
		attempted bool
	)
	for {
		select {
		case <-pctx.Done():
			if ctx.Err() != nil {
				return finish(ctx.Err())
			}
			return finish(fmt.Errorf("%w: %x after %v: %w", ErrNotCaughtUp, req.ID, req.Timeout, waitErr))
		case <-t.C:
		}
		t.Reset(m.opts.pollInterval)
		r, err := m.check(pctx)
		if err != nil {
			waitErr = err
			continue
		}
		// Whether it is still a learner comes from a linearizable member list: the
		// checker's serializable one may come from the new member itself, which sees
		// itself as a voter until it has caught up.
		learner, err := m.isLearner(pctx, req.ID)
		if err != nil {
			if pctx.Err() != nil {
				continue
			}
			return finish(err)
		}
		target, ferr := find(r, req.ID)
		if !learner {
			if attempted {
				// A promotion whose answer was lost (a timeout, a leader change) took.
				m.opts.logger.Info("learner promoted", zap.String("member", target.Name), zap.String("id", req.ID.Hex()), zap.NamedError("answer", waitErr))
				return finish(nil)
			}
			return finish(fmt.Errorf("%w: %s (%x) is not a learner", ErrInvalidArgument, target.Name, req.ID))
		}
		if ferr != nil {
			waitErr = fmt.Errorf("%w: %x is not in the checked membership yet", ErrUnhealthy, req.ID)
			continue
		}
		if err := degraded(r, req.ID); err != nil {
			if req.DryRun {
				return finish(err)
			}
			waitErr = err
			continue
		}
		voters, healthy, err := m.quorum(pctx, r)
		if err != nil {
			waitErr = err
			continue
		}
		rep.Voters = voters + 1
		rep.QuorumAfter = rep.Voters/2 + 1
		if healthy+1 < rep.QuorumAfter {
			return finish(fmt.Errorf("%w: %d healthy voters and the learner would not make the quorum of %d", ErrQuorum, healthy, rep.QuorumAfter))
		}
		rep.Plan = []Step{{Action: "promote", MemberID: req.ID, Member: target.Name,
			Detail: fmt.Sprintf("once caught up; %d voters, quorum %d", rep.Voters, rep.QuorumAfter)}}
		if req.DryRun {
			return finish(nil)
		}
		if !target.Reachable {
			waitErr = fmt.Errorf("learner unreachable (started?): %s", target.Error)
			continue
		}
		attempted = true
		_, err = m.cli.MemberPromote(pctx, uint64(req.ID))
		if err == nil {
			m.opts.logger.Info("learner promoted", zap.String("member", target.Name), zap.String("id", req.ID.Hex()))
			return finish(nil)
		}
		waitErr = err
		m.opts.logger.Info("learner not promoted yet", zap.String("member", target.Name), zap.Error(err))
	}
}

// RemoveRequest describes the removal of a member.
type RemoveRequest struct {
	ID     health.ID `json:"id"`
	DryRun bool      `json:"dryRun,omitempty"`
}

// Remove removes a member, refusing with ErrQuorum when the voting members left would
// not have a quorum of healthy members, and with ErrUnhealthy when the cluster is
// degraded other than by the member removed (a dead member can be removed; a member
// cannot be removed while another is partitioned). It never removes the last voting
// member. Removing the leader is allowed: it steps down.
func (m *Maintainer) Remove(ctx context.Context, req RemoveRequest) (*MemberReport, error) {
	start := time.Now()
	if req.ID == 0 {
		return nil, fmt.Errorf("%w: no member ID", ErrInvalidArgument)
	}
	rep := &MemberReport{DryRun: req.DryRun, Plan: []Step{}, MemberID: req.ID}
	finish := func(err error) (*MemberReport, error) {
		rep.Duration = since(start)
		return rep, err
	}
	if err := m.exists(ctx, req.ID); err != nil {
		return finish(err)
	}
	// The checker reads the membership serializably; wait for it to show the cluster's.
	r, err := m.settle(ctx, func(r *health.Report) error {
		if err := m.sameMembers(ctx, r); err != nil {
			return err
		}
		_, err := find(r, req.ID)
		return err
	})
	if err != nil {
		return finish(err)
	}
	target, _ := find(r, req.ID)
	voters, healthy, err := m.quorum(ctx, r)
	if err != nil {
		return finish(err)
	}
	learner, err := m.isLearner(ctx, req.ID)
	if err != nil {
		return finish(err)
	}
	target.Member.IsLearner = learner
	if err := removeGuard(r, target, voters, healthy, rep); err != nil {
		return finish(err)
	}
	rep.Plan = append(rep.Plan, Step{Action: "remove", MemberID: req.ID, Member: target.Name,
		Detail: fmt.Sprintf("%s; %d voters left, quorum %d", roleOf(target.Member.IsLearner, req.ID == r.Leader.ID), rep.Voters, rep.QuorumAfter)})
	if req.DryRun {
		return finish(nil)
	}
	if err := m.whileEtcdUnhealthy(ctx, func() error {
		_, err := m.cli.MemberRemove(ctx, uint64(req.ID))
		return err
	}); err != nil {
		return finish(fmt.Errorf("maintenance: remove %x: %w", req.ID, err))
	}
	m.opts.logger.Info("member removed", zap.String("member", target.Name), zap.String("id", req.ID.Hex()))
	return finish(nil)
}

// exists returns ErrNotFound unless a linearizable member list has member id.
func (m *Maintainer) exists(ctx context.Context, id health.ID) error {
	_, err := m.isLearner(ctx, id)
	return err
}

// isLearner reads, from a linearizable member list, whether member id is a learner; it
// returns ErrNotFound when there is no such member.
func (m *Maintainer) isLearner(ctx context.Context, id health.ID) (bool, error) {
	resp, err := m.memberList(ctx)
	if err != nil {
		return false, err
	}
	for _, mem := range resp.Members {
		if health.ID(mem.ID) == id {
			return mem.IsLearner, nil
		}
	}
	return false, fmt.Errorf("%w: %x", ErrNotFound, id)
}

// quorum counts the voting members of a linearizable member list, and those of them r
// shows healthy (reachable and seeing a leader). The checker's own counts come from a
// serializable list, which a member that has just joined may answer with a view of its
// own.
func (m *Maintainer) quorum(ctx context.Context, r *health.Report) (voters, healthy int, err error) {
	resp, err := m.memberList(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, mem := range resp.Members {
		if mem.IsLearner {
			continue
		}
		voters++
		if ms, ok := r.Member(health.ID(mem.ID)); ok && ms.Reachable && ms.Status.Leader != 0 {
			healthy++
		}
	}
	return voters, healthy, nil
}

// memberListTimeout bounds one linearizable member list: without a leader, etcd holds
// one for its request timeout and the client retries it, for minutes in all.
const memberListTimeout = 10 * time.Second

// memberList reads the membership linearizably, waiting at most memberListTimeout.
func (m *Maintainer) memberList(ctx context.Context) (*clientv3.MemberListResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, memberListTimeout)
	defer cancel()
	resp, err := m.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("maintenance: member list: %w", err)
	}
	return resp, nil
}

// etcdHealthInterval is how long etcd wants the member that takes a membership change
// to have been connected to a quorum of the voters before it accepts an add.
const etcdHealthInterval = 5 * time.Second

// whileEtcdUnhealthy calls fn until etcd stops refusing it as "unhealthy cluster", for
// at most the settle timeout, and never less than twice etcd's health interval. etcd
// refuses to add a member until the member that takes the request has been connected
// to a quorum of the voters, itself and the new member counted (every voter, in a
// cluster of three), for five seconds, which a cluster that just started, or a member
// that just reconnected, has not: a shorter wait could fail where waiting succeeds.
func (m *Maintainer) whileEtcdUnhealthy(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(max(m.opts.settleTimeout, 2*etcdHealthInterval))
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		err := fn()
		if err == nil || !errors.Is(err, rpctypes.ErrUnhealthy) || !time.Now().Before(deadline) {
			return err
		}
		m.opts.logger.Debug("etcd refused the membership change as unhealthy; retrying", zap.Error(err))
		t.Reset(m.opts.pollInterval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func removeGuard(r *health.Report, target health.MemberStatus, voters, healthy int, rep *MemberReport) error {
	voter := !target.Member.IsLearner
	healthyTarget := target.Reachable && target.Status.Leader != 0
	rep.Voters, rep.QuorumAfter = voters, voters/2+1
	healthyAfter := healthy
	if voter {
		rep.Voters--
		rep.QuorumAfter = rep.Voters/2 + 1
		if healthyTarget {
			healthyAfter--
		}
	}
	if voter && rep.Voters == 0 {
		return fmt.Errorf("%w: %s (%x) is the last voting member", ErrQuorum, target.Name, target.Member.ID)
	}
	if healthyAfter < rep.QuorumAfter {
		return fmt.Errorf("%w: removing %s (%x) leaves %d healthy of %d voting members, and a quorum needs %d",
			ErrQuorum, target.Name, target.Member.ID, healthyAfter, rep.Voters, rep.QuorumAfter)
	}
	return degraded(r, target.Member.ID)
}
