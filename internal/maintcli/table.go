package maintcli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// table is a bordered table, as etcdctl -w table prints.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = len(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	line := func() {
		b.WriteString("+")
		for _, w := range widths {
			b.WriteString(strings.Repeat("-", w+2) + "+")
		}
		b.WriteString("\n")
	}
	row := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			fmt.Fprintf(b, " %-*s |", widths[i], c)
		}
		b.WriteString("\n")
	}
	line()
	row(t.header)
	line()
	for _, r := range t.rows {
		row(r)
	}
	line()
}

func writeTable(w io.Writer, rep any) error {
	var b strings.Builder
	switch r := rep.(type) {
	case *maintenance.DefragmentReport:
		defragTable(&b, r)
	case *maintenance.CompactReport:
		plan(&b, r.DryRun, r.Plan)
		switch {
		case r.CompactRevision == 0:
			fmt.Fprintf(&b, "nothing to compact at revision %d\n", r.Revision)
		case r.AlreadyCompacted:
			fmt.Fprintf(&b, "already compacted at or beyond revision %d\n", r.CompactRevision)
		case !r.DryRun:
			fmt.Fprintf(&b, "compacted to revision %d of %d (physical: %v) in %v\n", r.CompactRevision, r.Revision, r.Physical, r.Duration)
		}
	case *maintenance.SnapshotReport:
		plan(&b, r.DryRun, r.Plan)
		if !r.DryRun {
			t := table{header: []string{"PATH", "MEMBER", "REVISION", "KEYS", "SIZE", "SHA256", "VERSION"}}
			t.add(r.Path, r.MemberName, itoa(r.Revision), strconv.Itoa(r.Keys), bytes(r.Size), r.SHA256, r.Version)
			t.write(&b)
			fmt.Fprintf(&b, "snapshot saved and verified in %v\n", r.Duration)
		}
	case *maintenance.AlarmReport:
		alarms(&b, r.Alarms)
		usageTable(&b, r.Usage)
	case *maintenance.DisarmReport:
		plan(&b, r.DryRun, r.Plan)
		usageTable(&b, r.Usage)
		switch {
		case len(r.Disarmed) == 0:
			b.WriteString("no NOSPACE alarm\n")
		case r.DryRun:
			fmt.Fprintf(&b, "would disarm %d alarm(s)\n", len(r.Disarmed))
		default:
			fmt.Fprintf(&b, "disarmed %d alarm(s)\n", len(r.Disarmed))
		}
	case *maintenance.MemberList:
		t := table{header: []string{"ID", "NAME", "STATUS", "LEADER", "IS LEARNER", "PEER ADDRS", "CLIENT ADDRS", "DB SIZE", "RAFT INDEX"}}
		for _, m := range r.Members {
			status := "started"
			switch {
			case m.Name == "":
				status = "unstarted"
			case !m.Reachable:
				status = "unreachable"
			}
			t.add(m.ID.Hex(), m.Name, status, strconv.FormatBool(m.Leader), strconv.FormatBool(m.Learner),
				strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), bytes(m.DBSize), strconv.FormatUint(m.RaftIndex, 10))
		}
		t.write(&b)
	case *maintenance.MemberReport:
		plan(&b, r.DryRun, r.Plan)
		if !r.DryRun && r.MemberID != 0 {
			fmt.Fprintf(&b, "member %s: done; %d voting members, quorum %d\n", r.MemberID.Hex(), r.Voters, r.QuorumAfter)
		}
		if r.InitialCluster != "" {
			fmt.Fprintf(&b, "start it with:\n  --initial-cluster=%s --initial-cluster-state=existing\n(replace NAME with the new member's --name)\n", r.InitialCluster)
		}
	case *maintenance.MoveLeaderReport:
		plan(&b, r.DryRun, r.Plan)
		switch {
		case r.AlreadyLeader:
			fmt.Fprintf(&b, "%s (%s) leads already\n", r.ToName, r.To.Hex())
		case !r.DryRun && r.To != 0:
			fmt.Fprintf(&b, "leadership moved from %s to %s in %v\n", r.FromName, r.ToName, r.Duration)
		}
	default:
		return fmt.Errorf("no table for %T", rep)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func defragTable(b *strings.Builder, r *maintenance.DefragmentReport) {
	plan(b, r.DryRun, r.Plan)
	if r.DryRun {
		return
	}
	t := table{header: []string{"ID", "NAME", "ROLE", "STATE", "DB BEFORE", "IN USE", "DB AFTER", "TOOK", "ERROR"}}
	for _, m := range r.Members {
		role := "follower"
		switch {
		case m.Learner:
			role = "learner"
		case m.WasLeader:
			role = "leader"
		}
		after, took := "", ""
		if m.State == maintenance.StateDone {
			after, took = bytes(m.DBSizeAfter), m.Duration.String()
		}
		t.add(m.ID.Hex(), m.Name, role, m.State, bytes(m.DBSizeBefore), bytes(m.DBSizeInUse), after, took, m.Error)
	}
	t.write(b)
	if r.LeaderMovedTo != 0 {
		fmt.Fprintf(b, "leadership moved to %s before the leader's turn\n", r.LeaderMovedTo.Hex())
	}
	if r.Aborted {
		fmt.Fprintf(b, "ABORTED: %s\n", r.Reason)
	} else {
		fmt.Fprintf(b, "defragmented %d member(s), freed %s, in %v\n", len(r.Members), bytes(r.Freed()), r.Duration)
	}
}

func plan(b *strings.Builder, dry bool, steps []maintenance.Step) {
	if !dry {
		return
	}
	if len(steps) == 0 {
		b.WriteString("dry run: nothing to do\n")
		return
	}
	b.WriteString("dry run; the plan:\n")
	for i, s := range steps {
		fmt.Fprintf(b, "  %d. %s\n", i+1, s)
	}
}

func alarms(b *strings.Builder, as []maintenance.Alarm) {
	if len(as) == 0 {
		b.WriteString("no alarms\n")
		return
	}
	t := table{header: []string{"MEMBER ID", "MEMBER", "ALARM"}}
	for _, a := range as {
		t.add(a.MemberID.Hex(), a.MemberName, a.Type)
	}
	t.write(b)
}

func usageTable(b *strings.Builder, us []maintenance.Usage) {
	t := table{header: []string{"MEMBER ID", "MEMBER", "DB SIZE", "IN USE", "QUOTA", "USED"}}
	for _, u := range us {
		used := "?"
		if u.Quota > 0 && u.Reachable {
			used = fmt.Sprintf("%.1f%%", 100*u.Ratio)
		}
		t.add(u.MemberID.Hex(), u.MemberName, bytes(u.DBSize), bytes(u.DBSizeInUse), bytes(u.Quota), used)
	}
	t.write(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// bytes formats a size as etcdctl does: "25 kB", "2.1 MB".
func bytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
