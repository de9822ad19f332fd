package store

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
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
	silences      map[string]Silence
	benchmarks    map[string]Benchmark
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store with the default bounds.
func NewMemory() *Memory {
	return &Memory{max: DefaultMaxNotifications, alerts: map[string]Alert{}, groups: map[string]Group{},
		silences: map[string]Silence{}, benchmarks: map[string]Benchmark{}}
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
	for _, fp := range del {
		delete(m.alerts, fp)
	}
	for _, a := range put {
		m.alerts[a.Fingerprint] = a
	}
	return nil
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

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
