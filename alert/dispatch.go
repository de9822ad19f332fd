package alert

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// group is one receiver's aggregation group: the alerts routed to it that share the
// route's group_by labels.
type group struct {
	id     string // receiver \x00 key
	key    string
	recv   *receiver
	route  *route
	labels map[string]string
	alerts map[string]Alert // firing, or resolved and not yet notified
	next   time.Time        // next flush
	// flushed: the group's group_wait is over (it was flushed at least once); alerts
	// joining it wait group_interval.
	flushed bool
}

// sentEntry is what was last notified for a group: Alertmanager's notification log.
type sentEntry struct {
	at       time.Time
	firing   map[string]bool
	resolved map[string]bool
}

func groupID(receiver, key string) string { return receiver + "\x00" + key }

func toSet(ss []string) map[string]bool {
	out := make(map[string]bool, len(ss))
	for _, s := range ss {
		out[s] = true
	}
	return out
}

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// groupKey is the route's path plus the values of its group_by labels.
func groupKey(r *route, labels map[string]string) (string, map[string]string) {
	gl := map[string]string{}
	if r.groupAll {
		gl = maps.Clone(labels)
	} else {
		for _, l := range r.groupBy {
			if v, ok := labels[l]; ok {
				gl[l] = v
			}
		}
	}
	var b strings.Builder
	b.WriteString(r.path + ":{")
	for i, k := range slices.Sorted(maps.Keys(gl)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + strconv.Quote(gl[k]))
	}
	b.WriteString("}")
	return b.String(), gl
}

// route puts a copy of as into its groups: a firing alert into every group its labels
// route to (creating groups, which then wait group_wait), a resolved one into the
// groups that hold it. m.mu is held.
func (m *Manager) route(as *alertState, now time.Time) {
	if as.a.State == Firing || len(as.groups) == 0 {
		labels := labelsOf(as.a)
		for _, r := range m.cfg.root.match(labels) {
			recv := m.receivers[r.receiver]
			if recv == nil {
				continue
			}
			key, gl := groupKey(r, labels)
			id := groupID(r.receiver, key)
			g := m.groups[id]
			if g == nil {
				if as.a.State != Firing && m.sent[id] == nil {
					continue // a resolve for a group never notified
				}
				g = &group{id: id, key: key, recv: recv, route: r, labels: gl, alerts: map[string]Alert{},
					next: m.groupWaitUntil(r, as, now)}
				m.groups[id] = g
			} else if !g.flushed && as.a.State == Firing {
				// A group still in its group_wait is notified at the earliest wait of its
				// alerts: an outage alert joining a group another alert opened (group_by
				// without alertname) is paged at its own 2 s, in the same notification.
				if next := m.groupWaitUntil(r, as, now); next.Before(g.next) {
					g.next = next
				}
			}
			as.groups[id] = true
		}
	}
	a := as.a
	a.Labels, a.Annotations = maps.Clone(a.Labels), maps.Clone(a.Annotations)
	for id := range as.groups {
		if g := m.groups[id]; g != nil {
			g.alerts[a.Fingerprint] = a
		} else {
			delete(as.groups, id)
		}
	}
}

// groupWaitUntil is when a group at r still in its group_wait must be notified for
// as: group_wait counts from when the alert started firing by the data's clock (the
// health check's start), not from when this evaluation ran: a check slowed by
// unreachable members does not delay the page.
func (m *Manager) groupWaitUntil(r *route, as *alertState, now time.Time) time.Time {
	wait := r.groupWaitFor(as.a.Name)
	next := now.Add(wait)
	if as.a.State == Firing && !as.a.StartsAt.IsZero() {
		if byData := as.a.StartsAt.Add(wait); byData.Before(next) {
			next = later(now, byData)
		}
	}
	return next
}

// groupWaitFor is the group_wait of a new group at r whose first alert is named name:
// the route's, or where no route set it, the outage default for OutageAlerts.
func (r *route) groupWaitFor(name string) time.Duration {
	if !r.groupWaitSet && outageAlert(name) {
		return DefaultOutageGroupWait
	}
	return r.groupWait
}

// poke wakes the scheduler.
func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// schedule flushes groups when they are due until the Manager closes.
func (m *Manager) schedule() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		m.mu.Lock()
		now := time.Now()
		next := now.Add(time.Hour)
		for _, g := range m.groups {
			if !g.next.After(now) {
				m.flushGroup(g, now)
			}
			if m.groups[g.id] != nil && g.next.Before(next) {
				next = g.next
			}
		}
		m.mu.Unlock()
		t.Reset(next.Sub(now))
		select {
		case <-m.ctx.Done():
			return
		case <-m.wake:
		case <-t.C:
		}
	}
}

// flush notifies every group now and waits for the receivers; a group whose previous
// notification was in flight is flushed again once it has landed.
func (m *Manager) flush(ctx context.Context) error {
	for pass := 0; ; pass++ {
		m.mu.Lock()
		now := time.Now()
		skipped := false
		for _, g := range m.groups {
			if !m.flushGroup(g, now) {
				skipped = true
			}
		}
		m.mu.Unlock()
		m.pendMu.Lock()
		idle := m.idle
		m.pendMu.Unlock()
		if idle != nil {
			select {
			case <-idle:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !skipped || pass >= 10 {
			return nil
		}
	}
}

// flushGroup decides, as Alertmanager does, whether the group needs a notification and
// queues it. It does nothing and returns false while the group's previous notification
// is in flight: its outcome decides what the next one must say. m.mu is held.
func (m *Manager) flushGroup(g *group, now time.Time) bool {
	interval := g.route.groupInterval
	if mr := g.recv.integ.maxRepeat; mr > 0 && mr < interval {
		interval = mr // an Alertmanager receiver must hear again before its endsAt
	}
	g.next = now.Add(interval)
	g.flushed = true
	if g.recv.sendingGroup(g.key) {
		return false
	}
	entry := m.sent[g.id]
	var firing, resolved []Alert
	// open are muted firing alerts that were notified firing: they are not notified
	// again while muted, but stay "notified firing", so their resolve goes out.
	open := map[string]bool{}
	for fp, a := range g.alerts {
		// A muted alert is not notified; but the resolve of one that was notified
		// firing always goes out, so the incident it opened is closed.
		if a.State == Firing && m.status(a, now).Muted() {
			if entry != nil && entry.firing[fp] {
				open[fp] = true
			}
			continue
		}
		switch {
		case a.State == Firing:
			firing = append(firing, a)
		case entry != nil && entry.firing[fp]:
			resolved = append(resolved, a)
		default:
			delete(g.alerts, fp) // resolved before anyone heard of it
		}
	}
	fset, rset := map[string]bool{}, map[string]bool{}
	for _, a := range firing {
		fset[a.Fingerprint] = true
	}
	for fp := range open {
		fset[fp] = true
	}
	for _, a := range resolved {
		rset[a.Fingerprint] = true
	}
	if !g.recv.sendResolved {
		rset = map[string]bool{}
	}
	repeat := g.route.repeat
	if mr := g.recv.integ.maxRepeat; mr > 0 && mr < repeat {
		repeat = mr
	}
	need := false
	switch {
	case entry == nil:
		need = len(fset) > 0
	case !subset(fset, entry.firing):
		need = true
	case len(entry.firing) > 0 && len(fset) == 0:
		need = true
	case !subset(rset, entry.resolved):
		need = true
	default:
		need = len(firing) > 0 && now.Sub(entry.at) >= repeat
	}
	if !need {
		m.gcGroup(g)
		return true
	}
	sortAlerts(firing)
	sortAlerts(resolved)
	n := Notification{Receiver: g.recv.name, GroupKey: g.key, GroupLabels: maps.Clone(g.labels), Status: Resolved,
		Alerts: firing, ExternalURL: m.opts.externalURL}
	if len(firing) > 0 {
		n.Status = Firing
	}
	if g.recv.sendResolved {
		n.Alerts = append(n.Alerts, resolved...)
	}
	sent := &sentEntry{at: now, firing: fset, resolved: toSet(slices.Collect(maps.Keys(rset)))}
	if len(n.Alerts) == 0 {
		// Everything resolved and the receiver does not want resolves: nothing to send,
		// but the group is done with them.
		m.delivered(g.id, sent, resolved)
		return true
	}
	sev := Info
	for _, a := range firing {
		sev = max(sev, a.Severity)
	}
	return g.recv.enqueue(&item{n: n, sev: sev, onSent: func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.delivered(g.id, sent, resolved)
	}})
}

func sortAlerts(as []Alert) {
	slices.SortFunc(as, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Labels["member"], b.Labels["member"]), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
}

// delivered records a successful notification of a group: the notification state moves
// on, and the resolved alerts it carried leave the group. m.mu is held.
func (m *Manager) delivered(id string, sent *sentEntry, resolved []Alert) {
	m.sent[id] = sent
	g := m.groups[id]
	recv, key := "", ""
	if g != nil {
		recv, key = g.recv.name, g.key
		for _, a := range resolved {
			if cur, ok := g.alerts[a.Fingerprint]; ok && cur.State == Resolved {
				delete(g.alerts, a.Fingerprint)
			}
		}
	} else {
		recv, key, _ = strings.Cut(id, "\x00")
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	rec := store.Group{Receiver: recv, GroupKey: key, SentAt: sent.at,
		Firing: slices.Sorted(maps.Keys(sent.firing)), Resolved: slices.Sorted(maps.Keys(sent.resolved))}
	if err := m.st.PutGroup(ctx, rec); err != nil {
		m.log.Error("alert: store write failed", zap.Error(err))
	}
	if g != nil {
		m.gcGroup(g)
	}
	// Resolved alerts no group holds any more leave the store.
	var del []string
	for _, a := range resolved {
		if m.alerts[a.Fingerprint] != nil {
			continue
		}
		held := false
		for _, og := range m.groups {
			if _, ok := og.alerts[a.Fingerprint]; ok {
				held = true
				break
			}
		}
		if !held {
			del = append(del, a.Fingerprint)
		}
	}
	if len(del) > 0 {
		if err := m.st.PutAlerts(ctx, nil, del); err != nil {
			m.log.Error("alert: store write failed", zap.Error(err))
		}
	}
}

// gcGroup deletes a group left with no alerts, and its notification state; m.mu is
// held.
func (m *Manager) gcGroup(g *group) {
	if len(g.alerts) > 0 {
		return
	}
	delete(m.groups, g.id)
	if _, ok := m.sent[g.id]; !ok {
		return
	}
	delete(m.sent, g.id)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := m.st.DeleteGroup(ctx, g.recv.name, g.key); err != nil {
		m.log.Error("alert: store write failed", zap.Error(err))
	}
}

// status says which silences and firing alerts mute a; m.mu is held.
func (m *Manager) status(a Alert, now time.Time) AlertStatus {
	st := AlertStatus{SilencedBy: []string{}, InhibitedBy: []string{}}
	labels := labelsOf(a)
	for _, s := range m.silences {
		if s.active(now) && s.Matchers.Matches(labels) {
			st.SilencedBy = append(st.SilencedBy, s.ID)
		}
	}
	slices.Sort(st.SilencedBy)
	for _, ir := range m.cfg.inhibits {
		if !ir.TargetMatchers.Matches(labels) {
			continue
		}
		for fp, src := range m.alerts {
			if fp == a.Fingerprint || src.a.State != Firing {
				continue
			}
			sl := labelsOf(src.a)
			if !ir.SourceMatchers.Matches(sl) {
				continue
			}
			eq := true
			for _, l := range ir.Equal {
				if sl[l] != labels[l] {
					eq = false
					break
				}
			}
			if eq && !slices.Contains(st.InhibitedBy, fp) {
				st.InhibitedBy = append(st.InhibitedBy, fp)
			}
		}
	}
	slices.Sort(st.InhibitedBy)
	return st
}

func (g *group) String() string { return fmt.Sprintf("%s/%s", g.recv.name, g.key) }
