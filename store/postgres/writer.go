package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// record is one queued history record: a health check or a metric snapshot, already
// validated and encoded.
type record struct {
	health  bool
	cluster string
	member  string
	time    time.Time
	healthy bool
	names   []string  // sorted
	vals    []float64 // in the order of names
	data    *string
	size    int64 // bytes held, roughly (see recordSize)
}

// recordSize estimates the memory a queued record holds: its strings, values and
// JSON, plus the struct and slice headers.
func recordSize(r *record) int64 {
	n := int64(160 + len(r.cluster) + len(r.member) + 24*len(r.names) + 8*len(r.vals))
	for _, name := range r.names {
		n += int64(len(name))
	}
	if r.data != nil {
		n += int64(len(*r.data))
	}
	return n
}

// writer is the bounded queue between Put* and the goroutine that writes to
// PostgreSQL. The goroutine takes a batch out of the queue while it writes it, so Put
// overflowing the queue drops only records never written; a batch that fails for a
// reason that may pass goes back to the front.
type writer struct {
	mu       sync.Mutex
	buf      []record
	bufBytes int64
	inflight int
	inBytes  int64 // of the batch in flight
	max      int
	maxBytes int64
	wake     chan struct{}
	changed  chan struct{} // closed and replaced when the queue shrinks
	shut     bool          // the last write at Close began: push refuses
}

func (w *writer) init(max int, maxBytes int64) {
	w.max, w.maxBytes, w.wake, w.changed = max, maxBytes, make(chan struct{}, 1), make(chan struct{})
}

// bytes is the memory held by the records waiting or being written.
func (w *writer) bytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bufBytes + w.inBytes
}

// len is the number of records waiting or being written.
func (w *writer) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf) + w.inflight
}

// push queues rs, dropping the oldest waiting records beyond the bound; it returns
// how many were dropped, and false (queueing nothing) once the queue is shut.
func (w *writer) push(rs []record) (dropped int, ok bool) {
	w.mu.Lock()
	if w.shut {
		w.mu.Unlock()
		return 0, false
	}
	w.buf = append(w.buf, rs...)
	for i := range rs {
		w.bufBytes += rs[i].size
	}
	dropped = w.trimLocked()
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return dropped, true
}

// close shuts the queue: what it holds is all the writer will ever take.
func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.shut = true
}

// trimLocked drops the oldest waiting records beyond the bounds: at most max records
// and maxBytes held, counting the batch in flight (which is not the queue's to drop).
func (w *writer) trimLocked() int {
	over := min(max(len(w.buf)+w.inflight-w.max, 0), len(w.buf))
	for _, r := range w.buf[:over] {
		w.bufBytes -= r.size
	}
	for over < len(w.buf) && w.bufBytes+w.inBytes > w.maxBytes {
		w.bufBytes -= w.buf[over].size
		over++
	}
	if over == 0 {
		return 0
	}
	w.buf = append(w.buf[:0:0], w.buf[over:]...)
	w.signalLocked()
	return over
}

// take removes up to n records from the front for writing.
func (w *writer) take(n int) []record {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(n, len(w.buf))
	batch := append([]record(nil), w.buf[:n]...)
	w.buf = append(w.buf[:0:0], w.buf[n:]...)
	w.inflight, w.inBytes = n, 0
	for i := range batch {
		w.inBytes += batch[i].size
	}
	w.bufBytes -= w.inBytes
	return batch
}

// done ends the batch in flight: written, or given up.
func (w *writer) done() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight, w.inBytes = 0, 0
	w.signalLocked()
}

// giveBack ends the batch in flight, returning what of it failed (and was not written
// or dropped) to the front of the queue, and drops the oldest records beyond the
// bound; it returns how many were dropped.
func (w *writer) giveBack(rest []record) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight, w.inBytes = 0, 0
	for i := range rest {
		w.bufBytes += rest[i].size
	}
	w.buf = append(rest[:len(rest):len(rest)], w.buf...)
	return w.trimLocked()
}

func (w *writer) signalLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// empty returns whether nothing waits or is being written, and a channel closed when
// that next changes.
func (w *writer) empty() (bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf) == 0 && w.inflight == 0, w.changed
}

const maxBatch = 2000

// PutHealthChecks implements store.Store: the checks are queued and written by a
// background goroutine; nil means queued. When the queue is full (in records or in
// bytes) the oldest records waiting (not the batch being written) are dropped and
// counted in Stats.Dropped and Stats.Errors.
func (s *Store) PutHealthChecks(ctx context.Context, checks []store.HealthCheck) error {
	rs := make([]record, 0, len(checks))
	for i, h := range checks {
		if err := h.Validate(); err != nil {
			return fmt.Errorf("%w (record %d)", err, i)
		}
		if h.Time.After(store.MaxRecordTime) {
			return fmt.Errorf("%w: time %v is after %v (record %d)", store.ErrInvalidArgument, h.Time, store.MaxRecordTime, i)
		}
		r, err := encode(true, h.Time, h.Cluster, "", h.Healthy, h.Values, h.Data, i)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	return s.queue(ctx, rs)
}

// PutMetricSnapshots implements store.Store, as PutHealthChecks does.
func (s *Store) PutMetricSnapshots(ctx context.Context, snaps []store.MetricSnapshot) error {
	rs := make([]record, 0, len(snaps))
	for i, m := range snaps {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("%w (record %d)", err, i)
		}
		if m.Time.After(store.MaxRecordTime) {
			return fmt.Errorf("%w: time %v is after %v (record %d)", store.ErrInvalidArgument, m.Time, store.MaxRecordTime, i)
		}
		r, err := encode(false, m.Time, m.Cluster, m.Member, false, m.Values, m.Data, i)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	return s.queue(ctx, rs)
}

func encode(health bool, t time.Time, cluster, member string, healthy bool, values map[string]float64, data json.RawMessage, i int) (record, error) {
	r := record{health: health, cluster: cluster, member: member, time: t.UTC(), healthy: healthy}
	r.names, r.vals = split(store.FiniteValues(values))
	var err error
	r.data, err = jsonOrNil(fmt.Sprintf("data of record %d", i), data)
	r.size = recordSize(&r)
	return r, err
}

func (s *Store) queue(ctx context.Context, rs []record) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.enqueue(rs)
}

// enqueue pushes rs to the writer, counting what overflows. A store that closed since
// the caller looked refuses them once its last write began (ErrClosed), so that no
// record is left queued after Close, neither written nor counted as dropped.
func (s *Store) enqueue(rs []record) error {
	if len(rs) == 0 {
		return nil
	}
	n, ok := s.w.push(rs)
	if !ok {
		return store.ErrClosed
	}
	if n > 0 {
		s.dropped.Add(uint64(n))
		s.errors.Add(1)
		s.log.Warn("history queue full: oldest records dropped", zap.Int("dropped", n), zap.Int("queue_size", s.opts.queueSize),
			zap.Int64("queue_bytes", s.opts.queueBytes))
	}
	return nil
}

// Flush waits until every history record queued before the call is written (or
// dropped), or ctx ends.
func (s *Store) Flush(ctx context.Context) error {
	for {
		empty, changed := s.w.empty()
		if empty {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("postgres: flush: %d records still queued: %w", s.w.len(), ctx.Err())
		case <-s.closing:
			return store.ErrClosed
		}
	}
}

// writeLoop writes queued history in batches. A batch that fails for a reason that may
// pass (PostgreSQL down, restarting, overloaded) is retried with backoff while new
// records queue up to the bound; of a batch PostgreSQL refuses as data only the records
// it refuses are dropped (see write). At Close the queue gets one last attempt within
// the operation timeout.
func (s *Store) writeLoop() {
	defer s.wg.Done()
	delay := 100 * time.Millisecond
	for {
		select {
		case <-s.w.wake:
		case <-s.closing:
			s.drain()
			return
		}
		for {
			batch := s.w.take(maxBatch)
			if len(batch) == 0 {
				s.w.done()
				break
			}
			n, err := s.write(func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), s.opts.opTimeout)
			}, batch)
			if err == nil {
				s.w.done()
				delay = 100 * time.Millisecond
				continue
			}
			s.errors.Add(1)
			rest := batch[n:]
			if !retryable(err) {
				s.dropped.Add(uint64(len(rest)))
				s.w.done()
				s.log.Error("history batch refused: dropped", zap.Int("records", len(rest)), zap.Error(err))
				continue
			}
			if n := s.w.giveBack(rest); n > 0 {
				s.dropped.Add(uint64(n))
			}
			s.log.Warn("history batch not written: will retry", zap.Int("records", len(rest)), zap.Duration("in", delay), zap.Error(err))
			if !s.backoff(delay) {
				s.drain()
				return
			}
			delay = min(2*delay, 5*time.Second)
		}
	}
}

// drain makes one bounded attempt to write what is queued at Close, and counts the
// rest as dropped. The queue is shut first: a Put racing with Close either queues
// before, and is written or counted here, or is refused.
func (s *Store) drain() {
	s.w.close()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.opTimeout)
	defer cancel()
	for {
		batch := s.w.take(maxBatch)
		if len(batch) == 0 {
			s.w.done()
			return
		}
		n, err := s.write(func() (context.Context, context.CancelFunc) { return ctx, func() {} }, batch)
		if err != nil {
			s.errors.Add(1)
			lost := len(batch) - n + len(s.w.take(1<<30))
			s.w.done()
			s.dropped.Add(uint64(lost))
			s.log.Error("history not written at close: dropped", zap.Int("records", lost), zap.Error(err))
			return
		}
		s.w.done()
	}
}

// write writes batch and counts what it wrote and dropped. When PostgreSQL refuses the
// batch for its data (a data exception or a constraint: text with a NUL byte or not
// UTF-8, JSON with \u0000, a time out of PostgreSQL's range), it writes each half of it
// on its own, down to single records, so that a record PostgreSQL refuses costs only
// itself: the refused records are dropped, each counted in Stats.Dropped and
// Stats.Errors, and the others are written, in their order (a later record of a key
// still wins). It returns how many records from the front of batch were dealt with,
// and the error of the write that failed for another reason, for which batch[n:] was
// not written. Each write runs under a context from newCtx.
func (s *Store) write(newCtx func() (context.Context, context.CancelFunc), batch []record) (n int, err error) {
	var refused int
	var first *record
	var firstErr error
	var split func(rs []record) (int, error)
	split = func(rs []record) (int, error) {
		ctx, cancel := newCtx()
		stale, err := s.writeBatch(ctx, rs)
		cancel()
		switch {
		case err == nil:
			s.written.Add(uint64(len(rs) - stale))
			s.dropped.Add(uint64(stale))
			return len(rs), nil
		case !refusedAsData(err):
			return 0, err
		case len(rs) == 1:
			refused++
			if first == nil {
				first, firstErr = &rs[0], err
			}
			return 1, nil
		}
		mid := len(rs) / 2
		if n, err := split(rs[:mid]); err != nil {
			return n, err
		}
		n, err := split(rs[mid:])
		return mid + n, err
	}
	n, err = split(batch)
	if refused > 0 {
		s.dropped.Add(uint64(refused))
		s.errors.Add(uint64(refused))
		s.log.Error("history records refused by PostgreSQL: dropped, the rest of their batch written", zap.Int("records", refused),
			zap.String("first_cluster", first.cluster), zap.String("first_member", first.member), zap.Time("first_time", first.time),
			zap.Error(firstErr))
	}
	return n, err
}

// refusedAsData reports whether PostgreSQL refused a write for the values written (a
// data exception or an integrity constraint), rather than for the statement or the
// connection.
func refusedAsData(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23":
		return true
	}
	return false
}

// writeBatch upserts a batch in one transaction, and moves the rollup watermarks back
// when it wrote rows the rollups already passed (late records, after an outage), so
// the next rollup redoes those steps. It drops, and returns the number of, the stale
// records: those in steps already rolled up whose source rows the retention may have
// deleted (older than the raw retention less a minute for the minute rollup, the
// minute retention less an hour for the hour rollup); redoing those steps would
// replace what the rollups kept with the late records alone.
func (s *Store) writeBatch(ctx context.Context, batch []record) (stale int, err error) {
	type hkey struct {
		cluster string
		t       time.Time
	}
	type mkey struct {
		cluster, member string
		t               time.Time
	}
	// Upsert needs each key once per statement; the last record of a key wins.
	hi, mi := map[hkey]int{}, map[mkey]int{}
	var hs, ms []record
	var hmin, mmin time.Time
	for _, r := range batch {
		if r.health {
			if i, ok := hi[hkey{r.cluster, r.time}]; ok {
				hs[i] = r
				continue
			}
			hi[hkey{r.cluster, r.time}] = len(hs)
			hs = append(hs, r)
			if hmin.IsZero() || r.time.Before(hmin) {
				hmin = r.time
			}
		} else {
			if i, ok := mi[mkey{r.cluster, r.member, r.time}]; ok {
				ms[i] = r
				continue
			}
			mi[mkey{r.cluster, r.member, r.time}] = len(ms)
			ms = append(ms, r)
			if mmin.IsZero() || r.time.Before(mmin) {
				mmin = r.time
			}
		}
	}
	var kinds []string
	if len(hs) > 0 {
		kinds = append(kinds, "health_1m", "health_1h")
	}
	if len(ms) > 0 {
		kinds = append(kinds, "metrics_1m", "metrics_1h")
	}
	var sets [][]string
	for _, r := range batch {
		if r.names != nil {
			sets = append(sets, r.names)
		}
	}
	ids, err := s.ids(ctx, sets)
	if err != nil {
		return 0, err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Hold off a rollup of these kinds until this commits (and wait for one that
		// runs), so no rollup misses rows committed after its snapshot. KEY SHARE does
		// not conflict with another writer's, nor with the rewind's update below.
		// Staleness is judged by PostgreSQL's clock, as the retention is.
		rows, err := tx.Query(ctx, `SELECT name, done_until, clock_timestamp() FROM rollup_state WHERE name = ANY($1) FOR KEY SHARE`, kinds)
		if err != nil {
			return err
		}
		done := map[string]time.Time{}
		var name string
		var until *time.Time
		var now time.Time
		if _, err := pgx.ForEachRow(rows, []any{&name, &until, &now}, func() error {
			if until != nil {
				done[name] = *until
			}
			return nil
		}); err != nil {
			return err
		}
		old := s.staleRecord(done, now)
		stale = 0
		for _, r := range batch {
			if old(r) {
				stale++
			}
		}
		hs, hmin := fresh(hs, old)
		ms, mmin := fresh(ms, old)
		// Each row's float8[] travels as an array literal: unnest would flatten an
		// array of arrays.
		if len(hs) > 0 {
			c := columns(hs, ids)
			if _, err := tx.Exec(ctx, `INSERT INTO health_raw (cluster, time, healthy, names, vals, data)
	SELECT c, t, h, n, v::float8[], d FROM unnest($1::text[], $2::timestamptz[], $3::boolean[], $4::integer[], $5::text[], $6::jsonb[]) AS u(c, t, h, n, v, d)
	ON CONFLICT (cluster, time) DO UPDATE SET healthy = excluded.healthy, names = excluded.names, vals = excluded.vals, data = excluded.data`,
				c.cluster, c.time, c.healthy, c.names, c.vals, c.data); err != nil {
				return err
			}
		}
		if len(ms) > 0 {
			c := columns(ms, ids)
			if _, err := tx.Exec(ctx, `INSERT INTO metrics_raw (cluster, time, member, names, vals, data)
	SELECT c, t, m, n, v::float8[], d FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::integer[], $5::text[], $6::jsonb[]) AS u(c, t, m, n, v, d)
	ON CONFLICT (cluster, time, member) DO UPDATE SET names = excluded.names, vals = excluded.vals, data = excluded.data`,
				c.cluster, c.time, c.member, c.names, c.vals, c.data); err != nil {
				return err
			}
		}
		for _, k := range []struct {
			kind string
			min  time.Time
		}{{"health", hmin}, {"metrics", mmin}} {
			if k.min.IsZero() {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE rollup_state SET done_until = date_bin(
	CASE WHEN name LIKE '%\_1h' THEN interval '1 hour' ELSE interval '1 minute' END, $2::timestamptz, timestamptz 'epoch')
	WHERE name IN ($1 || '_1m', $1 || '_1h') AND done_until > $2`, k.kind, k.min); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if stale > 0 {
		s.log.Warn("history older than the retention allows in steps already rolled up: dropped", zap.Int("records", stale))
	}
	return stale, nil
}

// staleRecord returns whether a record is stale (see writeBatch) at now, given the
// rollups' watermarks.
func (s *Store) staleRecord(done map[string]time.Time, now time.Time) func(record) bool {
	ret := s.opts.retention
	return func(r record) bool {
		kind := "metrics"
		if r.health {
			kind = "health"
		}
		if d, ok := done[kind+"_1m"]; ok && r.time.Before(now.Add(-ret.Raw+minute)) && d.After(binStart(r.time, minute)) {
			return true
		}
		if d, ok := done[kind+"_1h"]; ok && r.time.Before(now.Add(-ret.Minute+hour)) && d.After(binStart(r.time, hour)) {
			return true
		}
		return false
	}
}

// fresh returns the records of rs that are not old, and the earliest time among them.
func fresh(rs []record, old func(record) bool) (out []record, first time.Time) {
	for _, r := range rs {
		if old(r) {
			continue
		}
		out = append(out, r)
		if first.IsZero() || r.time.Before(first) {
			first = r.time
		}
	}
	return out, first
}

// cols are a batch's columns, for unnest.
type cols struct {
	cluster, member []string
	time            []time.Time
	healthy         []bool
	names           []*int32
	vals, data      []*string
}

func columns(rs []record, ids map[string]int32) cols {
	n := len(rs)
	c := cols{cluster: make([]string, n), member: make([]string, n), time: make([]time.Time, n), healthy: make([]bool, n),
		names: make([]*int32, n), vals: make([]*string, n), data: make([]*string, n)}
	for i, r := range rs {
		c.cluster[i], c.member[i], c.time[i], c.healthy[i], c.data[i] = r.cluster, r.member, r.time, r.healthy, r.data
		if r.names != nil {
			id := ids[namesKey(r.names)]
			c.names[i], c.vals[i] = &id, arrayLiteral(r.vals)
		}
	}
	return c
}
