package alert

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// storeTimeout bounds one write to the store.
const storeTimeout = 5 * time.Second

// Manager evaluates rules, tracks pending and firing alerts, and notifies receivers the
// way Alertmanager does: grouped, routed, inhibited, silenced. Use New.
type Manager struct {
	opts      options
	log       *zap.Logger
	st        store.Store
	cfg       *compiled
	receivers map[string]*receiver
	overrides map[string]RuleOverride
	counter   *prometheus.CounterVec
	duration  *prometheus.HistogramVec

	ctx       context.Context // ends when Close gives up on deliveries
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	wake      chan struct{}
	closeOnce sync.Once

	mu          sync.Mutex
	closed      bool
	rules       map[string][]Rule // by cluster
	alerts      map[string]*alertState
	groups      map[string]*group
	sent        map[string]*sentEntry // notification state by group id
	silences    map[string]*Silence
	snapshots   map[string][]*metrics.Snapshot // within the short windows
	counters    map[string][]counterPoint      // older, for the rules over longer windows
	sizes       map[string][]sizePoint         // older, one a minute, for the growth regression
	transitions []Alert
	deliveries  []Delivery

	pendMu      sync.Mutex
	outstanding int
	idle        chan struct{}
}

// alertState is one pending, firing or resolved-but-not-yet-notified alert.
type alertState struct {
	a        Alert
	rule     string // ruleKey
	cluster  string
	lastTrue time.Time
	// stored and storedState are lastTrue and the state as last written to the store
	// (zero before: a write that failed is made again at the next evaluation).
	stored      time.Time
	storedState State
	groups      map[string]bool
}

// storeRefresh is how far an alert's lastTrue may run ahead of the store's copy before
// an evaluation that changes nothing else writes it again: a firing alert costs a
// store write a minute, not one per evaluation. Rules with KeepFiringFor, whose resolve
// is timed from lastTrue, are written at every evaluation.
const storeRefresh = time.Minute

// New returns a Manager with the default rules (or those of WithRules) and the given
// receivers, loads the state kept in the store, and starts its goroutines.
func New(opts ...Option) (*Manager, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return nil, fieldErr(fmt.Sprintf("options[%d]", i), "nil Option")
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	var legacy []string
	for _, r := range o.receivers {
		legacy = append(legacy, r.name)
	}
	cfg, err := compileConfig(o.config, legacy)
	if err != nil {
		return nil, err
	}
	if o.repeat > 0 {
		if o.config.Route != nil && o.config.Route.RepeatInterval > 0 {
			return nil, fieldErr("dedup_window", "conflicts with route.repeat_interval; set only one")
		}
		setRepeat(cfg.root, o.repeat)
	}
	m := &Manager{
		opts: o, log: o.logger, cfg: cfg, receivers: map[string]*receiver{}, overrides: o.config.Rules,
		wake: make(chan struct{}, 1), rules: map[string][]Rule{}, alerts: map[string]*alertState{},
		groups: map[string]*group{}, sent: map[string]*sentEntry{}, silences: map[string]*Silence{},
		snapshots: map[string][]*metrics.Snapshot{}, counters: map[string][]counterPoint{},
		sizes: map[string][]sizePoint{},
	}
	m.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcd_monitor_notifications_total",
		Help: "Notification attempts by receiver and result (success, failure, dropped)."}, []string{"receiver", "result"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "etcd_monitor_notification_duration_seconds",
		Help:    "Duration of notification delivery attempts, by receiver, failed ones included.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"receiver"})
	if o.registerer != nil {
		if err := o.registerer.Register(m.counter); err != nil {
			return nil, fmt.Errorf("alert: register metrics: %w", err)
		}
		if err := o.registerer.Register(m.duration); err != nil {
			o.registerer.Unregister(m.counter)
			return nil, fmt.Errorf("alert: register metrics: %w", err)
		}
	}
	for _, rc := range o.config.Receivers {
		integ, _ := rc.build() // validated by compileConfig
		if rc.Type == TypeConsole {
			integ = &integration{sender: NewConsole(o.logger.Named("alert"))}
		}
		m.receivers[rc.Name] = newReceiver(m, rc.Name, integ, rc.sendResolved())
	}
	for _, nr := range o.receivers {
		m.receivers[nr.name] = newReceiver(m, nr.name, nr.integ, nr.sendResolved)
	}
	m.st = o.store
	if m.st == nil {
		m.st = store.NewMemory()
	}
	if err := m.load(); err != nil {
		if o.registerer != nil {
			o.registerer.Unregister(m.counter)
			o.registerer.Unregister(m.duration)
		}
		return nil, err
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for _, r := range m.receivers {
		m.wg.Go(func() { r.run(m.ctx) })
	}
	m.wg.Go(m.schedule)
	return m, nil
}

// setRepeat sets the repeat interval of r and of the routes below that inherit it.
func setRepeat(r *route, d time.Duration) {
	r.repeat = d
	for _, c := range r.routes {
		if !c.repeatSet {
			setRepeat(c, d)
		}
	}
}

// load restores alerts, notification state and silences from the store.
func (m *Manager) load() error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	alerts, err := m.st.Alerts(ctx)
	if err != nil {
		return fmt.Errorf("alert: load alerts: %w", err)
	}
	groups, err := m.st.Groups(ctx)
	if err != nil {
		return fmt.Errorf("alert: load notification state: %w", err)
	}
	silences, err := m.st.Silences(ctx)
	if err != nil {
		return fmt.Errorf("alert: load silences: %w", err)
	}
	for _, g := range groups {
		m.sent[groupID(g.Receiver, g.GroupKey)] = &sentEntry{at: g.SentAt, firing: toSet(g.Firing), resolved: toSet(g.Resolved)}
	}
	for _, s := range silences {
		sil := silenceFromStore(s)
		m.silences[sil.ID] = &sil
	}
	m.pruneSilences(ctx, time.Now())
	now := time.Now()
	var gone []string
	only, one := m.opts.labels["cluster"]
	for _, sa := range alerts {
		if one && sa.Cluster != only {
			continue // a Manager per cluster over a shared store takes its own
		}
		var rec storedAlert
		if err := json.Unmarshal(sa.Data, &rec); err != nil {
			return fmt.Errorf("alert: load alert %s: %w: %w", sa.Fingerprint, store.ErrCorrupt, err)
		}
		as := &alertState{a: rec.Alert, rule: rec.Rule, cluster: sa.Cluster, lastTrue: rec.LastTrue, stored: rec.LastTrue,
			storedState: rec.Alert.State, groups: map[string]bool{}}
		if as.a.State != Resolved {
			m.alerts[sa.Fingerprint] = as
		}
		if as.a.State != Pending {
			m.route(as, now)
		}
		if as.a.State == Resolved && len(as.groups) == 0 {
			gone = append(gone, sa.Fingerprint) // its resolve was never due anywhere
		}
	}
	if len(gone) > 0 {
		if err := m.st.PutAlerts(ctx, nil, gone); err != nil {
			return fmt.Errorf("alert: clean up the store: %w", err)
		}
	}
	return nil
}

// storedAlert is the store's Data of an alert.
type storedAlert struct {
	Alert    Alert     `json:"alert"`
	Rule     string    `json:"rule"`
	LastTrue time.Time `json:"lastTrue"`
}

func (as *alertState) record() store.Alert {
	data, _ := json.Marshal(storedAlert{Alert: as.a, Rule: as.rule, LastTrue: as.lastTrue})
	return store.Alert{Fingerprint: as.a.Fingerprint, Cluster: as.cluster, State: string(as.a.State),
		ActiveAt: as.a.ActiveAt, FiredAt: as.a.StartsAt, Data: data}
}

// Close sends what is queued (within the shutdown timeout), then stops the Manager's
// goroutines and waits for them. Notifications still undelivered then are recorded as
// dropped; alert state stays in the store. Close is idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.shutdownTimeout)
		if err := m.flush(ctx); err != nil {
			m.log.Warn("alert: notifications still queued at shutdown are dropped", zap.Duration("timeout", m.opts.shutdownTimeout))
		}
		cancel()
		m.cancel()
		m.wg.Wait()
		if m.opts.registerer != nil {
			m.opts.registerer.Unregister(m.counter)
			m.opts.registerer.Unregister(m.duration)
		}
		// The Manager's own in-memory store stays readable (Notifications) after Close.
	})
	return nil
}

// Evaluate is EvaluateCluster for the cluster named by WithLabels' "cluster" label (or
// none).
func (m *Manager) Evaluate(ctx context.Context, h *health.Report, s *metrics.Snapshot) ([]Alert, error) {
	return m.EvaluateCluster(ctx, m.opts.labels["cluster"], h, s)
}

// EvaluateCluster runs the rules of a cluster over its latest health report and metric
// snapshot (either may be nil) and updates its alerts: a new finding goes pending, and
// fires once it has lasted its rule's For; an alert whose finding is gone resolves
// (after KeepFiringFor). A rule whose input is missing — a needed nil input, a Missing
// finding, a panic — leaves its alerts as they are. Time is the data's: the newest of
// h.Time and s.Time. It returns the cluster's firing alerts, and never waits for a
// receiver.
func (m *Manager) EvaluateCluster(ctx context.Context, cluster string, h *health.Report, s *metrics.Snapshot) ([]Alert, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	in := &Input{Cluster: cluster, Health: h, Metrics: s, memo: map[seriesKey][]sample{}}
	var ht, st time.Time
	if h != nil {
		ht = orNow(h.Time)
	}
	if s != nil {
		st = orNow(s.Time)
		m.remember(cluster, s)
	}
	in.Time = later(ht, st)
	in.History, in.counters, in.sizes = m.snapshots[cluster], m.counters[cluster], m.sizes[cluster]

	var errs []error
	var changed []*alertState
	var deleted []string
	live := map[string]bool{}
	for _, r := range m.rulesFor(cluster) {
		key := ruleKey(r)
		o := m.overrides[r.Name]
		if o.Disabled {
			continue
		}
		live[key] = true
		if o.For != nil {
			r.For = *o.For
		}
		if o.KeepFiringFor != nil {
			r.KeepFiringFor = *o.KeepFiringFor
		}
		now := in.Time
		switch {
		case r.Needs&NeedsHealth != 0 && r.Needs&NeedsMetrics != 0:
			if h == nil || s == nil {
				continue
			}
		case r.Needs&NeedsHealth != 0:
			if h == nil {
				continue
			}
			now = ht
		case r.Needs&NeedsMetrics != 0:
			if s == nil {
				continue
			}
			now = st
		}
		fs, err := eval(r, in)
		if err != nil {
			errs = append(errs, err)
			m.log.Error("alert: rule failed; its alerts keep their state", zap.String("rule", r.Name), zap.Error(err))
			continue
		}
		found, held := map[string]Finding{}, map[string]bool{}
		for _, f := range fs {
			labels := m.labelsFor(cluster, f.Labels)
			fp := fingerprint(r, labels)
			f.Labels = labels
			if f.Missing {
				held[fp] = true
			} else if _, dup := found[fp]; !dup {
				found[fp] = f
			}
		}
		for fp, f := range found {
			if held[fp] {
				continue
			}
			as := m.alerts[fp]
			if as == nil {
				as = &alertState{rule: key, cluster: cluster, groups: map[string]bool{}, a: Alert{
					Fingerprint: fp, Name: r.Name, Severity: r.Severity, State: Pending, Labels: f.Labels,
					Annotations: annotations(r), Summary: r.Summary, ActiveAt: now, GeneratorURL: m.opts.externalURL}}
				m.alerts[fp] = as
			}
			if now.Before(as.lastTrue) {
				continue // older data than already seen
			}
			as.lastTrue = now
			as.a.Value, as.a.Description = f.Value, f.Description
			if as.a.State == Pending && now.Sub(as.a.ActiveAt) >= r.For {
				as.a.State, as.a.StartsAt = Firing, now
				m.transition(as.a)
			}
			if as.a.State == Firing {
				m.route(as, time.Now())
			}
			if as.a.State != as.storedState || r.KeepFiringFor > 0 || as.lastTrue.Sub(as.stored) >= storeRefresh {
				changed = append(changed, as)
			}
		}
		for fp, as := range m.alerts {
			if as.cluster != cluster || as.rule != key || held[fp] {
				continue
			}
			if _, ok := found[fp]; ok {
				continue
			}
			if now.Before(as.lastTrue) {
				continue
			}
			switch {
			case as.a.State == Pending:
				delete(m.alerts, fp)
				deleted = append(deleted, fp)
			case r.KeepFiringFor > 0 && now.Sub(as.lastTrue) < r.KeepFiringFor:
			default:
				// Resolved: out of the active set; its groups keep it until they have
				// notified the resolve, and so does the store, across a restart.
				as.a.State, as.a.EndsAt = Resolved, now
				m.transition(as.a)
				delete(m.alerts, fp)
				m.route(as, time.Now())
				if len(as.groups) > 0 {
					changed = append(changed, as)
				} else {
					deleted = append(deleted, fp)
				}
			}
		}
	}
	// Alerts of rules that no longer exist or were disabled (say, restored from the
	// store after a configuration change) resolve rather than fire forever.
	for fp, as := range m.alerts {
		if as.cluster != cluster || live[as.rule] {
			continue
		}
		delete(m.alerts, fp)
		if as.a.State != Firing {
			deleted = append(deleted, fp)
			continue
		}
		as.a.State, as.a.EndsAt = Resolved, in.Time
		m.transition(as.a)
		m.route(as, time.Now())
		if len(as.groups) > 0 {
			changed = append(changed, as)
		} else {
			deleted = append(deleted, fp)
		}
	}
	if err := m.persist(changed, deleted); err != nil {
		errs = append(errs, err)
	}
	m.poke()
	return m.alertsLocked(true, cluster), errors.Join(errs...)
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func annotations(r Rule) map[string]string {
	if r.RunbookURL == "" {
		return nil
	}
	return map[string]string{"runbook_url": r.RunbookURL}
}

// fingerprint identifies an alert: its name, severity and labels.
func fingerprint(r Rule, labels map[string]string) string {
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	l["severity"] = r.Severity.String()
	return Fingerprint(r.Name, l)
}

func (m *Manager) labelsFor(cluster string, own map[string]string) map[string]string {
	l := maps.Clone(m.opts.labels)
	if l == nil {
		l = map[string]string{}
	}
	if cluster != "" {
		l["cluster"] = cluster
	}
	maps.Copy(l, own)
	return l
}

// remember appends s to the cluster's history, once, and drops what no rule needs any
// more: the history keeps every snapshot within the windows of the rules over
// histograms and gRPC codes (Thresholds.denseSpan); a snapshot leaving them leaves its
// members' counters while the rules over longer windows read them (counterSpan), and,
// back to the growth window plus a minute, one point a minute of their database sizes,
// which is all the growth regression reads there (doc.go states the bound).
func (m *Manager) remember(cluster string, s *metrics.Snapshot) {
	h := m.snapshots[cluster]
	if n := len(h); n > 0 && !s.Time.After(h[n-1].Time) {
		return
	}
	h = append(h, s)
	t := m.thresholdsFor(cluster)
	dense, counted, keep := t.denseSpan(), t.counterSpan(), t.maxWindow()+time.Minute
	counters, sizes := m.counters[cluster], m.sizes[cluster]
	i := 0
	for i < len(h)-1 && s.Time.Sub(h[i].Time) > dense {
		i++
	}
	// Snapshots beyond maxSnapshots leave too, younger than dense when they come that
	// often; what the longer windows read of them is kept all the same.
	i = max(i, len(h)-maxSnapshots)
	for _, old := range h[:i] {
		age := s.Time.Sub(old.Time)
		if age <= counted {
			counters = append(counters, countersOf(old))
		}
		if age <= keep {
			sizes = addSizes(sizes, old)
		}
	}
	h = slices.Delete(h, 0, i) // clears the tail: the dropped snapshots go
	c := max(0, len(counters)-maxSnapshots)
	for c < len(counters) && s.Time.Sub(counters[c].t) > counted {
		c++
	}
	j := 0
	for j < len(sizes) && s.Time.Sub(sizes[j].t) > keep {
		j++
	}
	m.snapshots[cluster], m.counters[cluster], m.sizes[cluster] = h, slices.Delete(counters, 0, c), slices.Delete(sizes, 0, j)
}

// addSizes appends the database sizes of s's scraped members to ss, one point a minute
// of the clock: the minute's first, unless a later one scraped more members.
func addSizes(ss []sizePoint, s *metrics.Snapshot) []sizePoint {
	p := sizePoint{t: s.Time}
	for i := range s.Members {
		if m := &s.Members[i]; m.Scraped {
			p.members = append(p.members, memberSize{id: m.ID, size: m.DB.Size})
		}
	}
	if n := len(ss); n > 0 && sameStep(ss[n-1].t, s.Time) {
		if len(p.members) > len(ss[n-1].members) {
			ss[n-1] = p
		}
		return ss
	}
	return append(ss, p)
}

// maxSnapshots bounds the history kept per cluster whatever the thresholds and interval.
const maxSnapshots = 3000

func (m *Manager) thresholdsFor(cluster string) Thresholds {
	if t, ok := m.opts.clusterThresholds[cluster]; ok {
		return t
	}
	return m.opts.thresholds
}

func (m *Manager) rulesFor(cluster string) []Rule {
	if rs, ok := m.rules[cluster]; ok {
		return rs
	}
	rs := m.opts.ruleSet(m.thresholdsFor(cluster))
	m.rules[cluster] = rs
	return rs
}

// eval runs a rule, turning a panic into an error.
func eval(r Rule, in *Input) (fs []Finding, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("alert: rule %s panicked: %v", r.Name, p)
		}
	}()
	if r.Check != nil {
		return r.Check(in), nil
	}
	return r.Eval(in.Health, in.Metrics), nil
}

func (m *Manager) transition(a Alert) {
	a.Labels, a.Annotations = maps.Clone(a.Labels), maps.Clone(a.Annotations)
	m.transitions = append(m.transitions, a)
	if n := len(m.transitions) - HistorySize; n > 0 {
		m.transitions = slices.Delete(m.transitions, 0, n)
	}
}

// persist writes changed alerts and deletes others; m.mu is held.
func (m *Manager) persist(changed []*alertState, deleted []string) error {
	if len(changed) == 0 && len(deleted) == 0 {
		return nil
	}
	put := make([]store.Alert, 0, len(changed))
	for _, as := range changed {
		if m.alerts[as.a.Fingerprint] == as || as.a.State == Resolved {
			put = append(put, as.record())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := m.st.PutAlerts(ctx, put, deleted); err != nil {
		m.log.Error("alert: store write failed", zap.Error(err))
		return fmt.Errorf("alert: store: %w", err)
	}
	for _, as := range changed {
		as.stored, as.storedState = as.lastTrue, as.a.State
	}
	return nil
}

// Alerts returns the pending and firing alerts, highest severity first, each with its
// silenced and inhibited status.
func (m *Manager) Alerts() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alertsLocked(false, "")
}

// Active returns the firing alerts, highest severity first.
func (m *Manager) Active() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alertsLocked(true, "")
}

// alertsLocked returns the alerts (the firing ones only, of cluster only unless it is
// empty), copied; m.mu is held.
func (m *Manager) alertsLocked(firingOnly bool, cluster string) []Alert {
	now := time.Now()
	out := []Alert{}
	for _, as := range m.alerts {
		if firingOnly && as.a.State != Firing || cluster != "" && as.a.Labels["cluster"] != cluster {
			continue
		}
		a := as.a
		a.Labels, a.Annotations = maps.Clone(a.Labels), maps.Clone(a.Annotations)
		a.Status = m.status(a, now)
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
	return out
}

// History returns the last HistorySize alert transitions (firing, resolved), oldest first.
func (m *Manager) History() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.transitions)
	for i := range out {
		out[i].Labels, out[i].Annotations = maps.Clone(out[i].Labels), maps.Clone(out[i].Annotations)
	}
	return out
}

// Deliveries returns the last HistorySize delivery attempts, one per alert of a
// notification, oldest first.
func (m *Manager) Deliveries() []Delivery {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.deliveries)
}

// NotificationQuery selects notification log records.
type NotificationQuery = store.NotificationQuery

// NotificationRecord is one entry of the notification log.
type NotificationRecord = store.Notification

// Notifications returns the notification log, newest first: one record per attempt
// to notify a group to a receiver, with its status and (redacted) error.
func (m *Manager) Notifications(ctx context.Context, q NotificationQuery) ([]NotificationRecord, error) {
	return m.st.Notifications(ctx, q)
}

// Flush notifies every group now — those still in group_wait included — and waits
// until the receivers have delivered or given up, or ctx ends. After Close it returns
// ErrClosed.
func (m *Manager) Flush(ctx context.Context) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return m.flush(ctx)
}
