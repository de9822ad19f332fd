package maintenance

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// Alarm is an active alarm with the member that raised it.
type Alarm struct {
	MemberID   health.ID `json:"memberID"`
	MemberName string    `json:"memberName"`
	// Type is etcd's alarm name: "NOSPACE" or "CORRUPT".
	Type string `json:"type"`
}

// Usage is one member's database size against its quota.
type Usage struct {
	MemberID   health.ID `json:"memberID"`
	MemberName string    `json:"memberName"`
	Reachable  bool      `json:"reachable"`
	// DBSize is the database file size, which is what etcd holds against the quota;
	// DBSizeInUse is the logical size a defragmentation would shrink it to.
	DBSize      int64 `json:"dbSize"`
	DBSizeInUse int64 `json:"dbSizeInUse"`
	Quota       int64 `json:"quota"`
	// Ratio is DBSize / Quota (0 when the quota is unknown).
	Ratio float64 `json:"ratio"`
}

// AlarmReport lists the active alarms (by member name) and every member's usage of its
// quota.
type AlarmReport struct {
	Alarms []Alarm `json:"alarms"`
	Usage  []Usage `json:"usage"`
}

// Alarms lists the active alarms and each member's database usage.
func (m *Maintainer) Alarms(ctx context.Context) (*AlarmReport, error) {
	r, err := m.check(ctx)
	if err != nil {
		return nil, err
	}
	if r.AlarmsError != "" {
		return nil, fmt.Errorf("%w: alarm list: %s", ErrUnhealthy, r.AlarmsError)
	}
	return alarmReport(r, 0), nil
}

func alarmReport(r *health.Report, quota int64) *AlarmReport {
	rep := &AlarmReport{Alarms: []Alarm{}, Usage: []Usage{}}
	for _, a := range r.Alarms {
		rep.Alarms = append(rep.Alarms, Alarm{MemberID: a.MemberID, MemberName: nameOf(r, a.MemberID), Type: a.Type})
	}
	slices.SortFunc(rep.Alarms, func(a, b Alarm) int {
		return cmp.Or(strings.Compare(a.MemberName, b.MemberName), cmp.Compare(a.MemberID, b.MemberID), strings.Compare(a.Type, b.Type))
	})
	for _, ms := range r.Members {
		u := Usage{MemberID: ms.Member.ID, MemberName: ms.Name, Reachable: ms.Reachable, DBSize: ms.DBSize, DBSizeInUse: ms.DBSizeInUse, Quota: ms.DBSizeQuota}
		if u.Quota <= 0 && quota > 0 {
			u.Quota = quota // only for a member that does not report its own
		}
		if u.Quota > 0 {
			u.Ratio = float64(u.DBSize) / float64(u.Quota)
		}
		rep.Usage = append(rep.Usage, u)
	}
	return rep
}

// DisarmRequest describes the disarming of NOSPACE alarms.
type DisarmRequest struct {
	// MaxUsage is the share of its quota every member's database file must be under
	// before the alarm is disarmed; disarming sooner only lets writes fill the quota and
	// raise it again. Default 0.8.
	MaxUsage float64 `json:"maxUsage,omitempty"`
	// QuotaBytes is the backend quota for members that do not report theirs (etcd
	// before 3.6). Default: what each member reports.
	QuotaBytes int64 `json:"quotaBytes,omitempty"`
	DryRun     bool  `json:"dryRun,omitempty"`
}

// DefaultMaxUsage is the share of the quota under which NOSPACE is disarmed.
const DefaultMaxUsage = 0.8

// DisarmReport is the outcome of DisarmNoSpace.
type DisarmReport struct {
	DryRun bool   `json:"dryRun"`
	Plan   []Step `json:"plan"`
	// Disarmed are the alarms disarmed (in a dry run: that would be).
	Disarmed []Alarm       `json:"disarmed"`
	Usage    []Usage       `json:"usage"`
	Duration time.Duration `json:"duration"`
}

// DisarmNoSpace disarms the NOSPACE alarms, but only once every member's database
// file is under MaxUsage of its quota; otherwise it returns ErrOverQuota naming the
// member. The way there is to free space: Compact (to discard old revisions), then
// Defragment (to give the freed pages back; the file does not shrink without it), then
// DisarmNoSpace. It never disarms CORRUPT. A member that cannot be reached, or whose
// quota is unknown and QuotaBytes unset, makes it refuse with ErrUnhealthy. Without a
// NOSPACE alarm it does nothing and returns no error.
func (m *Maintainer) DisarmNoSpace(ctx context.Context, req DisarmRequest) (*DisarmReport, error) {
	start := time.Now()
	switch {
	case req.MaxUsage < 0 || req.MaxUsage > 1:
		return nil, fmt.Errorf("%w: max usage %v must be between 0 and 1", ErrInvalidArgument, req.MaxUsage)
	case req.QuotaBytes < 0:
		return nil, fmt.Errorf("%w: quota bytes %d must not be negative", ErrInvalidArgument, req.QuotaBytes)
	}
	if req.MaxUsage == 0 {
		req.MaxUsage = DefaultMaxUsage
	}
	rep := &DisarmReport{DryRun: req.DryRun, Plan: []Step{}, Disarmed: []Alarm{}, Usage: []Usage{}}
	finish := func(err error) (*DisarmReport, error) {
		rep.Duration = since(start)
		return rep, err
	}
	r, err := m.check(ctx)
	if err != nil {
		return finish(err)
	}
	if r.AlarmsError != "" {
		return finish(fmt.Errorf("%w: alarm list: %s", ErrUnhealthy, r.AlarmsError))
	}
	ar := alarmReport(r, req.QuotaBytes)
	rep.Usage = ar.Usage
	var nospace []Alarm
	for _, a := range ar.Alarms {
		if a.Type == pb.AlarmType_NOSPACE.String() {
			nospace = append(nospace, a)
		}
	}
	if len(nospace) == 0 {
		return finish(nil)
	}
	for _, u := range ar.Usage {
		switch {
		case !u.Reachable:
			return finish(fmt.Errorf("%w: %s (%x) is unreachable; its database size is unknown", ErrUnhealthy, u.MemberName, u.MemberID))
		case u.Quota <= 0:
			return finish(fmt.Errorf("%w: %s (%x) reports no quota; set QuotaBytes", ErrUnhealthy, u.MemberName, u.MemberID))
		case u.Ratio >= req.MaxUsage:
			return finish(fmt.Errorf("%w: %s (%x) uses %d of %d bytes (%.0f%%, limit %.0f%%; %d in use): free space first: compact, then defragment",
				ErrOverQuota, u.MemberName, u.MemberID, u.DBSize, u.Quota, 100*u.Ratio, 100*req.MaxUsage, u.DBSizeInUse))
		}
	}
	for _, a := range nospace {
		rep.Plan = append(rep.Plan, Step{Action: "disarm", MemberID: a.MemberID, Member: a.MemberName, Detail: a.Type})
	}
	if req.DryRun {
		rep.Disarmed = nospace
		return finish(nil)
	}
	for _, a := range nospace {
		m.opts.logger.Info("disarming alarm", zap.String("member", a.MemberName), zap.String("alarm", a.Type))
		if _, err := m.cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: uint64(a.MemberID), Alarm: pb.AlarmType_NOSPACE}); err != nil {
			return finish(fmt.Errorf("maintenance: disarm %s on %s: %w", a.Type, a.MemberName, err))
		}
		rep.Disarmed = append(rep.Disarmed, a)
	}
	return finish(nil)
}
