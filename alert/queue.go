package alert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// receiver delivers one receiver's notifications. Its queue holds at most one
// notification per group (a newer one replaces an older one not yet sent), orders them
// critical first and then oldest first, and sends up to DefaultParallel at once: a
// notification waiting to retry — after a 429's Retry-After, say — never holds up the
// others.
type receiver struct {
	m            *Manager
	name         string
	integ        *integration
	sendResolved bool
	wake         chan struct{}

	mu       sync.Mutex
	seq      uint64
	queued   map[string]*item // by group key
	inflight map[string]bool
	sending  sync.WaitGroup
}

type item struct {
	n         Notification
	sev       Severity
	seq       uint64
	attempt   int
	notBefore time.Time
	bo        *backoff.Backoff
	onSent    func()
}

func newReceiver(m *Manager, name string, integ *integration, sendResolved bool) *receiver {
	return &receiver{m: m, name: name, integ: integ, sendResolved: sendResolved, wake: make(chan struct{}, 1),
		queued: map[string]*item{}, inflight: map[string]bool{}}
}

func (r *receiver) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// sendingGroup reports whether a notification of the group is being sent.
func (r *receiver) sendingGroup(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[key]
}

// enqueue queues it, replacing a queued notification of the same group. It refuses
// (false) while a notification of the group is being sent: the outcome of that one
// decides what the next must say, and checking and queueing must be one step.
func (r *receiver) enqueue(it *item) bool {
	r.mu.Lock()
	if r.inflight[it.n.GroupKey] {
		r.mu.Unlock()
		return false
	}
	r.seq++
	it.seq = it.seqOr(r.seq)
	old := r.queued[it.n.GroupKey]
	if old == nil && len(r.queued) >= QueueSize {
		r.mu.Unlock()
		r.m.record(r, it, "dropped", ErrQueueFull, true)
		return true
	}
	r.queued[it.n.GroupKey] = it
	r.mu.Unlock()
	if old == nil {
		r.m.addOutstanding(1)
	}
	r.poke()
	return true
}

func (it *item) seqOr(s uint64) uint64 {
	if it.seq != 0 {
		return it.seq
	}
	return s
}

// run starts ready notifications until ctx ends, then drops what is left.
func (r *receiver) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		now := time.Now()
		next := now.Add(time.Hour)
		var ready []*item
		for k, it := range r.queued {
			switch {
			case r.inflight[k]:
			case it.notBefore.After(now):
				if it.notBefore.Before(next) {
					next = it.notBefore
				}
			default:
				ready = append(ready, it)
			}
		}
		slices.SortFunc(ready, func(a, b *item) int { return cmp.Or(cmp.Compare(b.sev, a.sev), cmp.Compare(a.seq, b.seq)) })
		for _, it := range ready {
			if len(r.inflight) >= DefaultParallel {
				break
			}
			delete(r.queued, it.n.GroupKey)
			r.inflight[it.n.GroupKey] = true
			r.sending.Add(1)
			go r.send(ctx, it)
		}
		r.mu.Unlock()
		t.Reset(next.Sub(now))
		select {
		case <-ctx.Done():
			r.sending.Wait()
			r.mu.Lock()
			left := r.queued
			r.queued = map[string]*item{}
			r.mu.Unlock()
			for _, it := range left {
				r.m.record(r, it, "dropped", ErrClosed, false)
				r.m.addOutstanding(-1)
			}
			return
		case <-r.wake:
		case <-t.C:
		}
	}
}

// send makes one attempt and decides what follows: done, retry later, or give up.
func (r *receiver) send(ctx context.Context, it *item) {
	defer r.sending.Done()
	it.attempt++
	start := time.Now()
	err := deliver(ctx, r.integ.sender, it.n)
	r.m.duration.WithLabelValues(r.name).Observe(time.Since(start).Seconds())
	retry := r.m.opts.retry
	if it.bo == nil {
		it.bo = backoff.New(retry.MinBackoff, retry.MaxBackoff)
	}
	done := true
	switch {
	case err == nil:
		r.m.record(r, it, "sent", nil, false)
		it.onSent()
	case ctx.Err() != nil:
		r.m.record(r, it, "dropped", err, false)
	default:
		delay, again := r.m.retryDelay(err, it.bo)
		if again && it.attempt < retry.Attempts {
			r.m.record(r, it, "retrying", err, false)
			it.notBefore = time.Now().Add(delay)
			done = false
		} else {
			r.m.record(r, it, "failed", err, false)
		}
	}
	r.mu.Lock()
	delete(r.inflight, it.n.GroupKey)
	if !done {
		if _, newer := r.queued[it.n.GroupKey]; newer {
			done = true // a newer notification of the group supersedes this one
		} else {
			r.queued[it.n.GroupKey] = it
		}
	}
	r.mu.Unlock()
	if done {
		r.m.addOutstanding(-1)
	}
	r.poke()
}

// deliver calls s, turning a panic into a permanent error.
func deliver(ctx context.Context, s Sender, n Notification) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Permanent(fmt.Errorf("alert: receiver panicked: %v", p))
		}
	}()
	return s.Send(ctx, n)
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

func (m *Manager) addOutstanding(d int) {
	m.pendMu.Lock()
	defer m.pendMu.Unlock()
	if m.outstanding == 0 && d > 0 {
		m.idle = make(chan struct{})
	}
	m.outstanding += d
	if m.outstanding == 0 && m.idle != nil {
		close(m.idle)
		m.idle = nil
	}
}

// record logs an attempt — redacted — in the notification log, the deliveries, the
// counter and the logger.
// locked says m.mu is held.
func (m *Manager) record(r *receiver, it *item, status string, err error, locked bool) {
	now := time.Now()
	msg := ""
	if err != nil {
		msg = redactText(err.Error(), r.integ.secrets)
	}
	rec := store.Notification{Time: now, Receiver: r.name, GroupKey: it.n.GroupKey, GroupLabels: it.n.GroupLabels,
		Attempt: it.attempt, Status: status, Error: msg}
	for _, a := range it.n.Alerts {
		if a.State == Firing {
			rec.Firing = append(rec.Firing, a.Fingerprint)
		} else {
			rec.Resolved = append(rec.Resolved, a.Fingerprint)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	if _, serr := m.st.AppendNotification(ctx, rec); serr != nil && !errors.Is(serr, store.ErrClosed) {
		m.log.Error("alert: store write failed", zap.Error(serr))
	}
	cancel()
	result := map[string]string{"sent": "success", "retrying": "failure", "failed": "failure", "dropped": "dropped"}[status]
	m.counter.WithLabelValues(r.name, result).Inc()
	if !locked {
		m.mu.Lock()
	}
	for _, a := range it.n.Alerts {
		m.deliveries = append(m.deliveries, Delivery{Time: now, Notifier: r.name, Fingerprint: a.Fingerprint, Name: a.Name,
			State: a.State, Attempt: it.attempt, Delivered: status == "sent", Final: status != "retrying", Error: msg})
	}
	if n := len(m.deliveries) - HistorySize; n > 0 {
		m.deliveries = slices.Delete(m.deliveries, 0, n)
	}
	if !locked {
		m.mu.Unlock()
	}
	if err != nil {
		names := make([]string, 0, len(it.n.Alerts))
		for _, a := range it.n.Alerts {
			names = append(names, a.Name)
		}
		m.log.Warn("alert: notification "+status, zap.String("receiver", r.name), zap.String("group", it.n.GroupKey),
			zap.String("alerts", strings.Join(names, ",")), zap.Int("attempt", it.attempt), zap.String("error", msg))
	}
}
