package alert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// Manager evaluates rules, tracks which alerts fire, and delivers them. Use New.
type Manager struct {
	opts    options
	rules   []Rule
	ctx     context.Context // ends at Close; bounds deliveries
	cancel  context.CancelFunc
	workers []*worker
	wg      sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	active     map[string]*activeAlert
	history    []Alert
	deliveries []Delivery
	pending    map[*job]struct{}
}

type activeAlert struct {
	alert    Alert
	lastSent time.Time
}

type worker struct {
	name  string
	n     Notifier
	queue chan *job
}

type job struct {
	alert Alert
	done  chan struct{}
}

// New returns a Manager with the default rules (or those of WithRules) and the given
// notifiers, and starts one delivery goroutine per notifier. Invalid thresholds or
// notifier settings make it fail.
func New(opts ...Option) (*Manager, error) {
	o := defaults()
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		opts:    o,
		rules:   o.ruleSet(),
		ctx:     ctx,
		cancel:  cancel,
		active:  map[string]*activeAlert{},
		pending: map[*job]struct{}{},
	}
	for _, nn := range o.notifiers {
		w := &worker{name: nn.name, n: nn.n, queue: make(chan *job, QueueSize)}
		m.workers = append(m.workers, w)
		m.wg.Go(func() { m.run(w) })
	}
	return m, nil
}

// Close stops delivery and waits for the notifier goroutines. Deliveries still queued or
// waiting to retry are abandoned and recorded as failed; call Flush first to wait for
// them. Close is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.wg.Wait()
		return nil
	}
	m.closed = true
	for _, w := range m.workers {
		close(w.queue)
	}
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

// Evaluate runs every rule over h and s (either may be nil), updates the set of firing
// alerts and queues deliveries: a new alert at once, a still-firing one again only after
// the dedup window, a resolved one at once. It returns the alerts firing now, sorted by
// severity (highest first) and name. It never waits for a notifier.
func (m *Manager) Evaluate(ctx context.Context, h *health.Report, s *metrics.Snapshot) ([]Alert, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	type found struct {
		rule Rule
		f    Finding
	}
	firing := map[string]found{}
	var errs []error
	for _, r := range m.rules {
		fs, err := eval(r, h, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range fs {
			if len(m.opts.labels) > 0 {
				l := maps.Clone(m.opts.labels)
				maps.Copy(l, f.Labels)
				f.Labels = l
			}
			fp := Fingerprint(r.Name, f.Labels)
			if _, dup := firing[fp]; !dup {
				firing[fp] = found{r, f}
			}
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	for fp, fd := range firing {
		if act, ok := m.active[fp]; ok {
			act.alert.Value, act.alert.Description = fd.f.Value, fd.f.Description
			if now.Sub(act.lastSent) >= m.opts.dedupWindow {
				act.lastSent = now
				m.enqueue(act.alert)
			}
			continue
		}
		a := Alert{
			Fingerprint: fp,
			Name:        fd.rule.Name,
			Severity:    fd.rule.Severity,
			State:       Firing,
			Labels:      maps.Clone(fd.f.Labels),
			Summary:     fd.rule.Summary,
			Description: fd.f.Description,
			Value:       fd.f.Value,
			StartsAt:    now,
		}
		m.active[fp] = &activeAlert{alert: a, lastSent: now}
		m.record(a)
		m.enqueue(a)
	}
	for fp, act := range m.active {
		if _, ok := firing[fp]; ok {
			continue
		}
		a := act.alert
		a.State, a.EndsAt = Resolved, now
		delete(m.active, fp)
		m.record(a)
		m.enqueue(a)
	}
	return m.activeLocked(), errors.Join(errs...)
}

// eval runs a rule, turning a panic in a caller's rule into an error.
func eval(r Rule, h *health.Report, s *metrics.Snapshot) (fs []Finding, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("alert: rule %s panicked: %v", r.Name, p)
		}
	}()
	return r.Eval(h, s), nil
}

// Active returns the alerts firing now, highest severity first.
func (m *Manager) Active() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.activeLocked()
}

func (m *Manager) activeLocked() []Alert {
	out := make([]Alert, 0, len(m.active))
	for _, act := range m.active {
		a := act.alert
		a.Labels = maps.Clone(a.Labels)
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
	return slices.Clone(m.history)
}

// Deliveries returns the last HistorySize delivery attempts, oldest first.
func (m *Manager) Deliveries() []Delivery {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.deliveries)
}

// Flush waits until every delivery queued so far has succeeded or been given up, or
// ctx ends.
func (m *Manager) Flush(ctx context.Context) error {
	m.mu.Lock()
	waits := make([]chan struct{}, 0, len(m.pending))
	for j := range m.pending {
		waits = append(waits, j.done)
	}
	m.mu.Unlock()
	for _, done := range waits {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (m *Manager) record(a Alert) {
	m.history = append(m.history, a)
	if n := len(m.history) - HistorySize; n > 0 {
		m.history = slices.Delete(m.history, 0, n)
	}
}

func (m *Manager) recordDelivery(d Delivery) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deliveriesAppend(d)
}

func (m *Manager) deliveriesAppend(d Delivery) {
	m.deliveries = append(m.deliveries, d)
	if n := len(m.deliveries) - HistorySize; n > 0 {
		m.deliveries = slices.Delete(m.deliveries, 0, n)
	}
}

// enqueue hands a to every notifier's queue; m.mu is held.
func (m *Manager) enqueue(a Alert) {
	for _, w := range m.workers {
		j := &job{alert: a, done: make(chan struct{})}
		select {
		case w.queue <- j:
			m.pending[j] = struct{}{}
		default:
			close(j.done)
			m.deliveriesAppend(Delivery{Time: time.Now(), Notifier: w.name, Fingerprint: a.Fingerprint, Name: a.Name,
				State: a.State, Final: true, Error: ErrQueueFull.Error()})
			m.opts.logger.Warn("alert dropped: notifier queue full", zap.String("notifier", w.name), zap.String("alert", a.Name))
		}
	}
}

func (m *Manager) run(w *worker) {
	for j := range w.queue {
		m.deliver(w, j.alert)
		m.mu.Lock()
		delete(m.pending, j)
		m.mu.Unlock()
		close(j.done)
	}
}

// deliver tries one alert on one notifier until it is accepted, fails permanently, runs
// out of attempts or the Manager closes.
func (m *Manager) deliver(w *worker, a Alert) {
	r := m.opts.retry
	bo := backoff.New(r.MinBackoff, r.MaxBackoff)
	for attempt := 1; ; attempt++ {
		d := Delivery{Notifier: w.name, Fingerprint: a.Fingerprint, Name: a.Name, State: a.State, Attempt: attempt}
		if err := m.ctx.Err(); err != nil {
			d.Time, d.Final, d.Error = time.Now(), true, "abandoned: "+ErrClosed.Error()
			m.recordDelivery(d)
			return
		}
		err := notify(m.ctx, w.n, a)
		d.Time = time.Now()
		if err == nil {
			d.Delivered, d.Final = true, true
			m.recordDelivery(d)
			return
		}
		d.Error = err.Error()
		delay, retry := m.retryDelay(err, bo)
		if !retry || attempt >= r.Attempts {
			d.Final = true
			m.recordDelivery(d)
			m.opts.logger.Warn("alert delivery failed", zap.String("notifier", w.name), zap.String("alert", a.Name),
				zap.Int("attempts", attempt), zap.Error(err))
			return
		}
		m.recordDelivery(d)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-m.ctx.Done():
			t.Stop()
		}
	}
}

// notify calls n, turning a panic in a caller's notifier into an error.
func notify(ctx context.Context, n Notifier, a Alert) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Permanent(fmt.Errorf("alert: notifier panicked: %v", p))
		}
	}()
	return n.Notify(ctx, a)
}

// retryDelay says whether err is worth a retry and after how long: the server's
// Retry-After (capped) when it gave one, the backoff otherwise.
func (m *Manager) retryDelay(err error, bo *backoff.Backoff) (time.Duration, bool) {
	var p permanent
	if errors.As(err, &p) {
		return 0, false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		if !he.Temporary() {
			return 0, false
		}
		if he.RetryAfter > 0 && m.opts.retry.MaxRetryAfter > 0 {
			bo.Next()
			return min(he.RetryAfter, m.opts.retry.MaxRetryAfter), true
		}
	}
	return bo.Next(), true
}
