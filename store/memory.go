package store

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Memory is a Store held in memory: state lives as long as the process. Use NewMemory.
type Memory struct {
	mu            sync.Mutex
	closed        bool
	max           int
	alerts        map[string]Alert
	groups        map[string]Group
	notifications []Notification
	seq           uint64
	transitions   []AlertTransition
	trSeq         uint64
	silences      map[string]Silence
	benchmarks    map[string]Benchmark
	maintenance   map[string]MaintenanceOp
	health        map[seriesKey][]sample
	metrics       map[seriesKey][]sample
}

// seriesKey names one time series of history.
type seriesKey struct{ cluster, member string }

var (
	_ Store          = (*Memory)(nil)
	_ AlertHistorian = (*Memory)(nil)
)

// NewMemory returns an empty in-memory Store with the default bounds: the notification
// log holds DefaultMaxNotifications records; history keeps DefaultHistoryRetention, and
// at most DefaultMemoryHistory records of each cluster (and member).
func NewMemory() *Memory {
	return &Memory{max: DefaultMaxNotifications, alerts: map[string]Alert{}, groups: map[string]Group{},
		silences: map[string]Silence{}, benchmarks: map[string]Benchmark{}, maintenance: map[string]MaintenanceOp{},
		health: map[seriesKey][]sample{}, metrics: map[seriesKey][]sample{}}
}

func (m *Memory) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Alerts implements Store.
func (m *Memory) Alerts(ctx context.Context) ([]Alert, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.alerts))
	slices.SortFunc(out, func(a, b Alert) int { return cmp.Compare(a.Fingerprint, b.Fingerprint) })
	return out, nil
}

// PutAlerts implements Store.
func (m *Memory) PutAlerts(ctx context.Context, put []Alert, del []string) error {
	for i, a := range put {
		if a.Fingerprint == "" {
			return fmt.Errorf("%w: put[%d].fingerprint is empty", ErrInvalidArgument, i)
		}
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	before := make(map[string]Alert, len(put)+len(del))
	for _, fp := range del {
		if a, ok := m.alerts[fp]; ok {
			before[fp] = a
		}
		delete(m.alerts, fp)
	}
	for _, a := range put {
		if b, ok := m.alerts[a.Fingerprint]; ok {
			before[a.Fingerprint] = b
		}
		m.alerts[a.Fingerprint] = a
	}
	for _, tr := range Transitions(before, put, del, time.Now()) {
		m.trSeq++
		tr.ID = m.trSeq
		m.transitions = append(m.transitions, tr)
	}
	if over := len(m.transitions) - m.max; over > 0 {
		m.transitions = slices.Delete(m.transitions, 0, over)
	}
	return nil
}

// AlertHistory implements AlertHistorian.
func (m *Memory) AlertHistory(ctx context.Context, q AlertHistoryQuery) ([]AlertTransition, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []AlertTransition
	for i := len(m.transitions) - 1; i >= 0 && len(out) < limitOr(q.Limit); i-- {
		if tr := m.transitions[i]; matchTransition(tr, q) {
			out = append(out, tr)
		}
	}
	slices.Reverse(out)
	return out, nil
}

// Groups implements Store.
func (m *Memory) Groups(ctx context.Context) ([]Group, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.groups))
	slices.SortFunc(out, func(a, b Group) int {
		return cmp.Or(cmp.Compare(a.Receiver, b.Receiver), cmp.Compare(a.GroupKey, b.GroupKey))
	})
	return out, nil
}

// PutGroup implements Store.
func (m *Memory) PutGroup(ctx context.Context, g Group) error {
	if g.Receiver == "" {
		return fmt.Errorf("%w: group receiver is empty", ErrInvalidArgument)
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.groups[groupID(g.Receiver, g.GroupKey)] = g
	return nil
}

// DeleteGroup implements Store.
func (m *Memory) DeleteGroup(ctx context.Context, receiver, key string) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.groups, groupID(receiver, key))
	return nil
}

// AppendNotification implements Store.
func (m *Memory) AppendNotification(ctx context.Context, n Notification) (Notification, error) {
	if err := m.lock(ctx); err != nil {
		return n, err
	}
	defer m.mu.Unlock()
	m.seq++
	n.ID = m.seq
	m.notifications = append(m.notifications, n)
	if over := len(m.notifications) - m.max; over > 0 {
		m.notifications = slices.Delete(m.notifications, 0, over)
	}
	return n, nil
}

// Notifications implements Store.
func (m *Memory) Notifications(ctx context.Context, q NotificationQuery) ([]Notification, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Notification
	for i := len(m.notifications) - 1; i >= 0 && len(out) < limitOr(q.Limit); i-- {
		if n := m.notifications[i]; matchNotification(n, q) {
			out = append(out, n)
		}
	}
	return out, nil
}

func matchNotification(n Notification, q NotificationQuery) bool {
	return (q.Receiver == "" || n.Receiver == q.Receiver) && (q.GroupKey == "" || n.GroupKey == q.GroupKey)
}

// Silences implements Store.
func (m *Memory) Silences(ctx context.Context) ([]Silence, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.silences))
	slices.SortFunc(out, func(a, b Silence) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// PutSilence implements Store.
func (m *Memory) PutSilence(ctx context.Context, s Silence) error {
	if s.ID == "" {
		return fmt.Errorf("%w: silence id is empty", ErrInvalidArgument)
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.silences[s.ID] = s
	return nil
}

// DeleteSilence implements Store.
func (m *Memory) DeleteSilence(ctx context.Context, id string) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.silences[id]; !ok {
		return fmt.Errorf("%w: silence %q", ErrNotFound, id)
	}
	delete(m.silences, id)
	return nil
}

// PutBenchmark implements Store.
func (m *Memory) PutBenchmark(ctx context.Context, b Benchmark) error {
	if b.ID == "" {
		return fmt.Errorf("%w: benchmark id is empty", ErrInvalidArgument)
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.benchmarks[b.ID] = b
	return nil
}

// Benchmarks implements Store.
func (m *Memory) Benchmarks(ctx context.Context, q BenchmarkQuery) ([]Benchmark, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return selectBenchmarks(slices.Collect(maps.Values(m.benchmarks)), q), nil
}

func selectBenchmarks(all []Benchmark, q BenchmarkQuery) []Benchmark {
	all = slices.DeleteFunc(all, func(b Benchmark) bool { return q.Cluster != "" && b.Cluster != q.Cluster })
	slices.SortFunc(all, func(a, b Benchmark) int { return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(a.ID, b.ID)) })
	if n := limitOr(q.Limit); len(all) > n {
		all = all[:n]
	}
	return all
}

// PutHealthChecks implements Store.
func (m *Memory) PutHealthChecks(ctx context.Context, checks []HealthCheck) error {
	in, err := validSamples(checks, fromHealth)
	if err != nil {
		return err
	}
	return m.putSamples(ctx, m.health, in)
}

// HealthChecks implements Store.
func (m *Memory) HealthChecks(ctx context.Context, q HistoryQuery) ([]HealthCheck, error) {
	out, err := m.samples(ctx, m.health, q, false)
	return convert(out, sample.health), err
}

// PutMetricSnapshots implements Store.
func (m *Memory) PutMetricSnapshots(ctx context.Context, snaps []MetricSnapshot) error {
	in, err := validSamples(snaps, fromMetric)
	if err != nil {
		return err
	}
	return m.putSamples(ctx, m.metrics, in)
}

// MetricSnapshots implements Store.
func (m *Memory) MetricSnapshots(ctx context.Context, q HistoryQuery) ([]MetricSnapshot, error) {
	out, err := m.samples(ctx, m.metrics, q, true)
	return convert(out, sample.metric), err
}

func convert[S, T any](in []S, fn func(S) T) []T {
	out := make([]T, len(in))
	for i, s := range in {
		out[i] = fn(s)
	}
	return out
}

func (m *Memory) putSamples(ctx context.Context, series map[seriesKey][]sample, in []sample) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	cutoff := time.Now().Add(-DefaultHistoryRetention)
	for _, s := range in {
		k := seriesKey{s.Cluster, s.Member}
		ss := series[k]
		i, found := slices.BinarySearchFunc(ss, s.Time, func(e sample, t time.Time) int { return e.Time.Compare(t) })
		if found {
			ss[i] = s
		} else {
			ss = slices.Insert(ss, i, s)
		}
		series[k] = ss
	}
	// Every series, also those no longer written (a cluster no longer monitored).
	for k, ss := range series {
		drop, _ := slices.BinarySearchFunc(ss, cutoff, func(e sample, t time.Time) int { return e.Time.Compare(t) })
		drop = max(drop, len(ss)-DefaultMemoryHistory)
		if drop == len(ss) {
			delete(series, k)
		} else if drop > 0 {
			series[k] = slices.Delete(ss, 0, drop)
		}
	}
	return nil
}

func (m *Memory) samples(ctx context.Context, series map[seriesKey][]sample, q HistoryQuery, members bool) ([]sample, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var all []sample
	for k, ss := range series {
		if (q.Cluster != "" && k.cluster != q.Cluster) || (members && q.Member != "" && k.member != q.Member) {
			continue
		}
		lo, hi := 0, len(ss)
		if !q.Since.IsZero() {
			lo, _ = slices.BinarySearchFunc(ss, q.Since, func(e sample, t time.Time) int { return e.Time.Compare(t) })
		}
		if !q.Until.IsZero() {
			hi, _ = slices.BinarySearchFunc(ss, q.Until, func(e sample, t time.Time) int { return e.Time.Compare(t) })
		}
		if lo < hi {
			all = append(all, ss[lo:hi]...)
		}
	}
	return selectSamples(all, q, members), nil
}

// PutMaintenanceOp implements Store.
func (m *Memory) PutMaintenanceOp(ctx context.Context, op MaintenanceOp) error {
	if err := op.Validate(); err != nil {
		return err
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.maintenance[op.ID] = op
	return nil
}

// MaintenanceOps implements Store.
func (m *Memory) MaintenanceOps(ctx context.Context, q MaintenanceQuery) ([]MaintenanceOp, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return selectMaintenance(slices.Collect(maps.Values(m.maintenance)), q), nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
