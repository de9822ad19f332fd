package maintcli

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

type command = func(context.Context, *env) (any, error)

func (f *flags) defrag(args []string) (command, error) {
	var (
		req     maintenance.DefragmentRequest
		members string
	)
	f.fs.BoolVar(&req.MoveLeader, "move-leader", false, "move leadership away before the leader's turn")
	f.fs.StringVar(&members, "members", "", "comma-separated member IDs to defragment (default: all)")
	f.fs.BoolVar(&req.AllowSingleMember, "allow-single-member", false, "defragment a one-member cluster, which stops serving meanwhile")
	f.fs.DurationVar(&req.MemberTimeout, "member-timeout", maintenance.DefaultMemberTimeout, "bound on each member's defragmentation")
	if err := f.noArgs(args); err != nil {
		return nil, err
	}
	for _, s := range splitList(members) {
		id, err := parseID(s)
		if err != nil {
			return nil, fmt.Errorf("--members: %w", err)
		}
		req.Members = append(req.Members, id)
	}
	req.DryRun = f.dryRun
	return func(ctx context.Context, e *env) (any, error) { return e.m.Defragment(ctx, req) }, nil
}

func (f *flags) compact(args []string) (command, error) {
	var req maintenance.CompactRequest
	f.fs.Int64Var(&req.KeepRevisions, "keep-revisions", 0, "keep the last N revisions")
	f.fs.DurationVar(&req.KeepNewerThan, "keep-newer-than", 0, "keep the revisions written within this duration (needs revision marks)")
	f.fs.BoolVar(&req.Physical, "physical", false, "wait until the compaction is applied to the backend")
	if err := f.noArgs(args); err != nil {
		return nil, err
	}
	if (req.KeepRevisions > 0) == (req.KeepNewerThan > 0) {
		return nil, fmt.Errorf("exactly one of --keep-revisions and --keep-newer-than is required")
	}
	req.DryRun = f.dryRun
	return func(ctx context.Context, e *env) (any, error) { return e.m.Compact(ctx, req) }, nil
}

func (f *flags) snapshot(args []string) (command, error) {
	var member string
	f.fs.StringVar(&member, "member", "", "member ID to take the snapshot from (default: a healthy follower)")
	pos, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 2 || pos[0] != "save" {
		return nil, fmt.Errorf("want: snapshot save PATH")
	}
	req := maintenance.SnapshotRequest{DryRun: f.dryRun}
	if member != "" {
		if req.Member, err = parseID(member); err != nil {
			return nil, fmt.Errorf("--member: %w", err)
		}
	}
	path := pos[1]
	return func(ctx context.Context, e *env) (any, error) { return e.m.SnapshotFile(ctx, path, req) }, nil
}

func (f *flags) alarm(args []string) (command, error) {
	var req maintenance.DisarmRequest
	f.fs.Float64Var(&req.MaxUsage, "max-usage", maintenance.DefaultMaxUsage, "share of its quota every member must be under before NOSPACE is disarmed")
	f.fs.Int64Var(&req.QuotaBytes, "quota-bytes", 0, "backend quota of members that do not report theirs")
	pos, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 1 && pos[0] == "list":
		return func(ctx context.Context, e *env) (any, error) { return e.m.Alarms(ctx) }, nil
	case len(pos) == 1 && pos[0] == "disarm":
		req.DryRun = f.dryRun
		return func(ctx context.Context, e *env) (any, error) { return e.m.DisarmNoSpace(ctx, req) }, nil
	}
	return nil, fmt.Errorf("want: alarm list|disarm")
}

func (f *flags) member(args []string) (command, error) {
	var timeout time.Duration
	f.fs.DurationVar(&timeout, "timeout", maintenance.DefaultPromoteTimeout, "promote: how long to wait for the learner to catch up")
	pos, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("want: member list|add|promote|remove")
	}
	one := func() (health.ID, error) {
		if len(pos) != 2 {
			return 0, fmt.Errorf("want: member %s ID", pos[0])
		}
		return parseID(pos[1])
	}
	switch pos[0] {
	case "list":
		if len(pos) != 1 {
			return nil, fmt.Errorf("want: member list")
		}
		return func(ctx context.Context, e *env) (any, error) { return e.m.Members(ctx) }, nil
	case "add":
		if len(pos) != 2 {
			return nil, fmt.Errorf("want: member add PEER_URL[,PEER_URL...]")
		}
		req := maintenance.AddRequest{PeerURLs: splitList(pos[1]), DryRun: f.dryRun}
		return func(ctx context.Context, e *env) (any, error) { return e.m.AddLearner(ctx, req) }, nil
	case "promote":
		id, err := one()
		if err != nil {
			return nil, err
		}
		req := maintenance.PromoteRequest{ID: id, Timeout: timeout, DryRun: f.dryRun}
		return func(ctx context.Context, e *env) (any, error) { return e.m.Promote(ctx, req) }, nil
	case "remove":
		id, err := one()
		if err != nil {
			return nil, err
		}
		req := maintenance.RemoveRequest{ID: id, DryRun: f.dryRun}
		return func(ctx context.Context, e *env) (any, error) { return e.m.Remove(ctx, req) }, nil
	}
	return nil, fmt.Errorf("unknown member command %q: want list|add|promote|remove", pos[0])
}

func (f *flags) moveLeader(args []string) (command, error) {
	pos, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	req := maintenance.MoveLeaderRequest{DryRun: f.dryRun}
	switch len(pos) {
	case 0:
	case 1:
		if req.To, err = parseID(pos[0]); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("want: move-leader [ID]")
	}
	return func(ctx context.Context, e *env) (any, error) { return e.m.MoveLeader(ctx, req) }, nil
}

// noArgs parses args and refuses positional arguments.
func (f *flags) noArgs(args []string) error {
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	return nil
}

func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}
