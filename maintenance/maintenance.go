package maintenance

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// Maintainer runs guarded maintenance operations on the cluster of one client. Use New.
type Maintainer struct {
	cli     *clientv3.Client
	checker *health.Checker
	opts    options
	defrag  sync.Mutex // held by the running defragmentation
}

// New returns a Maintainer of the cluster cli reaches. cli stays the caller's to close.
func New(cli *clientv3.Client, opts ...Option) (*Maintainer, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	checker := o.checker
	if checker == nil {
		var err error
		if checker, err = health.New(cli, health.WithLogger(o.logger)); err != nil {
			return nil, fmt.Errorf("maintenance: health checker: %w", err)
		}
	}
	return &Maintainer{cli: cli, checker: checker, opts: o}, nil
}

// Step is one action of an operation's plan. A dry run returns the plan without taking
// any step; a real run returns the plan it followed.
type Step struct {
	// Action is what is done: "defragment", "move-leader", "compact", "snapshot",
	// "disarm", "add-learner", "promote", "remove".
	Action   string    `json:"action"`
	MemberID health.ID `json:"memberID,omitempty"`
	Member   string    `json:"member,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

func (s Step) String() string {
	var b strings.Builder
	b.WriteString(s.Action)
	if s.Member != "" || s.MemberID != 0 {
		fmt.Fprintf(&b, " %s (%x)", s.Member, s.MemberID)
	}
	if s.Detail != "" {
		b.WriteString(": " + s.Detail)
	}
	return b.String()
}

// check runs the health checker.
func (m *Maintainer) check(ctx context.Context) (*health.Report, error) {
	r, err := m.checker.Check(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnhealthy, err)
	}
	return r, nil
}

// degraded returns why r shows a cluster no maintenance should touch, or nil. The state
// of member except (0: none) is not held against the cluster, so that a dead member can
// be removed.
func degraded(r *health.Report, except health.ID) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrUnhealthy, fmt.Sprintf(format, args...))
	}
	switch {
	case !r.Quorum.HasQuorum:
		return bad("no quorum: %d of %d voting members healthy, %d needed", r.Quorum.Healthy, r.Quorum.Voters, r.Quorum.Size)
	case r.Leader.ID == 0:
		return bad("no leader")
	case r.SplitBrain.Detected:
		return bad("split brain: %s", r.SplitBrain.Reason)
	}
	for _, p := range r.Partition.Members {
		if p.ID != except {
			return bad("member %s (%x) is partitioned: %s", p.Name, p.ID, p.Reason)
		}
	}
	if !r.Leader.Agreed {
		return bad("members disagree about the leader")
	}
	for _, a := range r.Alarms {
		if a.Type == "CORRUPT" {
			return bad("CORRUPT alarm on member %x", a.MemberID)
		}
	}
	return nil
}

// settle waits, for at most the settle timeout, until cond accepts a fresh report, and
// returns that report; otherwise the last report (possibly nil) and cond's last error.
func (m *Maintainer) settle(ctx context.Context, cond func(*health.Report) error) (*health.Report, error) {
	deadline := time.Now().Add(m.opts.settleTimeout)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		r, err := m.check(ctx)
		if err == nil {
			if err = cond(r); err == nil {
				return r, nil
			}
		}
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		if !time.Now().Before(deadline) {
			return r, err
		}
		t.Reset(m.opts.pollInterval)
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-t.C:
		}
	}
}

// sameMembers returns nil when r lists the members a linearizable member list has, each
// a learner or a voter as there, and ErrUnhealthy otherwise. The checker reads the
// membership serializably: a member that has not applied the latest membership change
// yet still lists a member just removed, or not yet one just added or promoted, and
// would have it held against the cluster or counted wrong.
func (m *Maintainer) sameMembers(ctx context.Context, r *health.Report) error {
	resp, err := m.memberList(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnhealthy, err)
	}
	learner := make(map[health.ID]bool, len(resp.Members))
	for _, mem := range resp.Members {
		learner[health.ID(mem.ID)] = mem.IsLearner
	}
	same := len(r.Members) == len(learner)
	for _, ms := range r.Members {
		l, ok := learner[ms.ID]
		same = same && ok && l == ms.Member.IsLearner
	}
	if !same {
		return fmt.Errorf("%w: the checked membership (%d members) is not the cluster's (%d) yet", ErrUnhealthy, len(r.Members), len(learner))
	}
	return nil
}

// find returns the entry of member id in r.
func find(r *health.Report, id health.ID) (health.MemberStatus, error) {
	if ms, ok := r.Member(id); ok {
		return ms, nil
	}
	return health.MemberStatus{}, fmt.Errorf("%w: %x", ErrNotFound, id)
}

func hasAlarm(r *health.Report, typ string) bool { return r.HasAlarm(typ) }

// since is a duration rounded for reports.
func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
