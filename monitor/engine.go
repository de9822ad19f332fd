package monitor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// Replicas: several Services (daemons) on one store all monitor and serve the API, and
// exactly one of them — the holder of a lease the caller runs — evaluates alerts and
// notifies. A Service made WithStandby starts with no alert engine; RunAlerts runs one
// for a term of the lease, loading the state the previous engine left in the store, so
// a takeover neither re-sends what was sent nor forgets a resolve that is due.

// ErrStandby is returned by a standby's requests that change alert state (silences):
// they belong to the active replica. The API answers 503 with Retry-After.
var ErrStandby = errors.New("monitor: standby replica: the active replica manages alerts")

// WithStandby makes the Service a replica that evaluates no alert and sends no
// notification until RunAlerts gives it a term. Meanwhile its alert endpoints answer
// from the store (refreshed at most once a second) and refuse to change silences (503).
// It needs WithStore.
func WithStandby() Option { return optionFunc(func(o *options) { o.standby = true }) }

// engine is the alert engine of the current term and the standby's view of the store.
type engine struct {
	term   sync.Mutex // one term at a time
	mu     sync.Mutex
	active *alert.Manager // the term's engine; nil on a standby between terms
	view   *alert.Manager // a standby's read-only view of the store
	viewAt time.Time
	closed bool // no view is made after Close
}

// alertManager returns the manager that evaluates: the term's on a replica, else the
// Service's own. Nil on a standby between terms.
func (s *Service) alertManager() *alert.Manager {
	if !s.opts.standby {
		return s.alerts
	}
	s.engine.mu.Lock()
	defer s.engine.mu.Unlock()
	return s.engine.active
}

// readManager returns the manager the alert endpoints read: the evaluating one, or on a
// standby a view of the store at most a second old.
func (s *Service) readManager(ctx context.Context) (*alert.Manager, error) {
	if m := s.alertManager(); m != nil {
		return m, nil
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errorf(http.StatusServiceUnavailable, "service is shutting down")
	}
	s.engine.mu.Lock()
	defer s.engine.mu.Unlock()
	if s.engine.closed {
		return nil, errorf(http.StatusServiceUnavailable, "service is shutting down")
	}
	if s.engine.view != nil && time.Since(s.engine.viewAt) < time.Second {
		return s.engine.view, nil
	}
	// No receivers, no rules run: a view never notifies, and its store refuses writes.
	view, err := alert.New(alert.WithStore(readOnly{s.opts.store}), alert.WithRegisterer(prometheus.NewRegistry()),
		alert.WithLogger(s.opts.logger.Named("alert-view")))
	if err != nil {
		return nil, fmt.Errorf("standby: read alert state from the store: %w", err)
	}
	if s.engine.view != nil {
		s.engine.view.Close()
	}
	s.engine.view, s.engine.viewAt = view, time.Now()
	return view, nil
}

// RunAlerts runs the alert engine of a standby Service (WithStandby) for one term: it
// builds the alert.Manager from WithAlertOptions over st (the lease's fenced view of the
// store), loading the state the previous term left, evaluates every cluster's latest
// report and snapshot at once, and then after every check and collection, until ctx
// ends or the Service closes. It then closes the manager — which sends what is queued
// within its shutdown timeout — and returns to standby. It returns ErrInvalidArgument
// without WithStandby, ErrClosed after Close.
func (s *Service) RunAlerts(ctx context.Context, st store.Store) error {
	return s.runTerm(ctx, nil, st)
}

// RunAlertsLeased is RunAlerts for a term of a lease that can run out under it: lease
// is the caller's context of the lease, which it ends before another replica could take
// the lease (ahead of the lease's expiry by a margin, or at once when a write was fenced
// off). No store write of the term and no notification outlives lease:
//
//   - every read and write of st gets a context that ends with lease, so an evaluation
//     stuck in a write (PostgreSQL stalls) is freed when lease ends;
//   - when ctx ends the engine stops evaluating and sends what is queued only until
//     lease ends (not within the manager's shutdown timeout, which it does not use);
//   - when lease ends, ctx or not, the engine closes at once, cancelling the sends in
//     flight; what it could not send stays due in the store for the next term.
//
// The caller bounds the wind-down by ending lease (a shutdown deadline, say).
func (s *Service) RunAlertsLeased(ctx, lease context.Context, st store.Store) error {
	if lease == nil {
		return fmt.Errorf("%w: RunAlertsLeased: nil lease context", ErrInvalidArgument)
	}
	return s.runTerm(ctx, lease, st)
}

// runTerm is RunAlerts, bounded by lease when it is not nil.
func (s *Service) runTerm(ctx, lease context.Context, st store.Store) error {
	if !s.opts.standby {
		return fmt.Errorf("%w: RunAlerts needs WithStandby", ErrInvalidArgument)
	}
	if st == nil {
		return fmt.Errorf("%w: RunAlerts: nil store", ErrInvalidArgument)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.engine.term.Lock()
	defer s.engine.term.Unlock()

	var leaseDone <-chan struct{} // nil (never) without a lease
	opts := []alert.Option{alert.WithLogger(s.opts.logger.Named("alert")), alert.WithRegisterer(s.registry)}
	if lease != nil {
		if err := lease.Err(); err != nil {
			return fmt.Errorf("monitor: alert engine: the term's lease ended: %w", context.Cause(lease))
		}
		leaseDone = lease.Done()
		st = leasedStore{Store: st, lease: lease}
		opts = append(opts, s.alertOptions(st)...)
		// The term's end flushes within lease below; Close then only cancels.
		opts = append(opts, alert.WithShutdownTimeout(time.Nanosecond))
	} else {
		opts = append(opts, s.alertOptions(st)...)
	}
	m, err := alert.New(opts...)
	if err != nil {
		return fmt.Errorf("monitor: alert engine: %w", err)
	}
	s.engine.mu.Lock()
	s.engine.active = m
	s.engine.mu.Unlock()
	// What is due is sent now, not a health interval later.
	for _, c := range s.clusters {
		c.evaluate(ctx)
	}
	select {
	case <-ctx.Done():
	case <-s.stop:
	case <-leaseDone:
	}
	s.engine.mu.Lock()
	s.engine.active = nil
	s.engine.mu.Unlock()
	// An evaluation in flight finishes with m before m closes; one stuck in a store
	// write is freed when lease ends.
	for _, c := range s.clusters {
		c.evalMu.Lock()
		c.evalMu.Unlock() //nolint:staticcheck // a barrier
	}
	if lease != nil && lease.Err() == nil {
		if err := m.Flush(lease); err != nil {
			s.opts.logger.Warn("alert: notifications still queued when the term's lease ended are left to the next term",
				zap.NamedError("reason", context.Cause(lease)))
		}
	}
	return m.Close()
}

// leasedStore gives every call of the alert engine a context that also ends with the
// term's lease, so that no store write outlives the term.
type leasedStore struct {
	store.Store
	lease context.Context
}

// bound returns ctx ending also with the lease, or the lease's cause when it has ended.
func (l leasedStore) bound(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if l.lease.Err() != nil {
		return nil, nil, fmt.Errorf("monitor: the term's lease ended: %w", context.Cause(l.lease))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.lease, func() { cancel(context.Cause(l.lease)) })
	return ctx, func() { stop(); cancel(nil) }, nil
}

func leased[T any](l leasedStore, ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel, err := l.bound(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	defer cancel()
	return f(ctx)
}

func leased0(l leasedStore, ctx context.Context, f func(context.Context) error) error {
	_, err := leased(l, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

func (l leasedStore) Alerts(ctx context.Context) ([]store.Alert, error) {
	return leased(l, ctx, l.Store.Alerts)
}
func (l leasedStore) PutAlerts(ctx context.Context, put []store.Alert, del []string) error {
	return leased0(l, ctx, func(ctx context.Context) error { return l.Store.PutAlerts(ctx, put, del) })
}
func (l leasedStore) Groups(ctx context.Context) ([]store.Group, error) {
	return leased(l, ctx, l.Store.Groups)
}
func (l leasedStore) PutGroup(ctx context.Context, g store.Group) error {
	return leased0(l, ctx, func(ctx context.Context) error { return l.Store.PutGroup(ctx, g) })
}
func (l leasedStore) DeleteGroup(ctx context.Context, receiver, key string) error {
	return leased0(l, ctx, func(ctx context.Context) error { return l.Store.DeleteGroup(ctx, receiver, key) })
}
func (l leasedStore) AppendNotification(ctx context.Context, n store.Notification) (store.Notification, error) {
	return leased(l, ctx, func(ctx context.Context) (store.Notification, error) { return l.Store.AppendNotification(ctx, n) })
}
func (l leasedStore) Silences(ctx context.Context) ([]store.Silence, error) {
	return leased(l, ctx, l.Store.Silences)
}
func (l leasedStore) PutSilence(ctx context.Context, sil store.Silence) error {
	return leased0(l, ctx, func(ctx context.Context) error { return l.Store.PutSilence(ctx, sil) })
}
func (l leasedStore) DeleteSilence(ctx context.Context, id string) error {
	return leased0(l, ctx, func(ctx context.Context) error { return l.Store.DeleteSilence(ctx, id) })
}

// Close does nothing: the term's store is the caller's.
func (leasedStore) Close() error { return nil }

// closeEngine closes a standby's view; the term's engine is closed by RunAlerts.
func (s *Service) closeEngine() error {
	s.engine.mu.Lock()
	defer s.engine.mu.Unlock()
	s.engine.closed = true
	if s.engine.view == nil {
		return nil
	}
	err := s.engine.view.Close()
	s.engine.view = nil
	return err
}

// standbyError maps ErrStandby to a 503 naming the active replica when known.
func (s *Service) standbyError() error {
	msg := "this replica is a standby: silences are managed by the active replica"
	if s.opts.replica != nil {
		if r := s.opts.replica(); r.ActiveID != "" {
			msg += " (" + r.ActiveID + ")"
		}
	}
	return errorf(http.StatusServiceUnavailable, "%s", msg)
}

// readOnly is a store that refuses every write, for a standby's view: reading the state
// never changes it.
type readOnly struct{ store.Store }

var errReadOnly = errors.New("monitor: standby view of the store: read only")

// PutAlerts ignores a clean-up of resolved alerts (loading one whose resolve is due
// elsewhere asks for it: that is the active replica's to do) and refuses the rest.
func (readOnly) PutAlerts(_ context.Context, put []store.Alert, _ []string) error {
	if len(put) == 0 {
		return nil
	}
	return errReadOnly
}
func (readOnly) PutGroup(context.Context, store.Group) error       { return errReadOnly }
func (readOnly) DeleteGroup(context.Context, string, string) error { return errReadOnly }
func (readOnly) AppendNotification(context.Context, store.Notification) (store.Notification, error) {
	return store.Notification{}, errReadOnly
}
func (readOnly) PutSilence(context.Context, store.Silence) error                  { return errReadOnly }
func (readOnly) DeleteSilence(context.Context, string) error                      { return errReadOnly }
func (readOnly) PutBenchmark(context.Context, store.Benchmark) error              { return errReadOnly }
func (readOnly) PutHealthChecks(context.Context, []store.HealthCheck) error       { return errReadOnly }
func (readOnly) PutMetricSnapshots(context.Context, []store.MetricSnapshot) error { return errReadOnly }
func (readOnly) PutMaintenanceOp(context.Context, store.MaintenanceOp) error      { return errReadOnly }
func (readOnly) Close() error                                                     { return nil }

// alertOptions are the options of an alert manager over st (nil: none).
func (s *Service) alertOptions(st store.Store) []alert.Option {
	opts := slices.Clone(s.opts.alertOpts)
	if st != nil {
		opts = append(opts, alert.WithStore(st))
	}
	return opts
}
