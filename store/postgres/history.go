package postgres

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/etcd-monitor/etcd-monitor/store"
)

const (
	minute = time.Minute
	hour   = time.Hour
)

// table is one history table: a kind at a resolution (0 for raw).
type table struct {
	name, kind string
	res        time.Duration
}

var historyTables = []table{
	{"health_raw", "health", 0}, {"health_1m", "health", minute}, {"health_1h", "health", hour},
	{"metrics_raw", "metrics", 0}, {"metrics_1m", "metrics", minute}, {"metrics_1h", "metrics", hour},
}

// levels returns kind's tables, finest first.
func levels(kind string) []table {
	var out []table
	for _, t := range historyTables {
		if t.kind == kind {
			out = append(out, t)
		}
	}
	return out
}

// bounds is a half-open time range; a nil end does not bound.
type bounds struct{ lo, hi *time.Time }

func (b bounds) intersect(o bounds) bounds {
	if o.lo != nil && (b.lo == nil || o.lo.After(*b.lo)) {
		b.lo = o.lo
	}
	if o.hi != nil && (b.hi == nil || o.hi.Before(*b.hi)) {
		b.hi = o.hi
	}
	return b
}

func (b bounds) empty() bool {
	return b.hi != nil && (b.hi.IsZero() || (b.lo != nil && !b.lo.Before(*b.hi)))
}

// watermarksSQL reads how far each rollup of kind ($1) has got, and PostgreSQL's now,
// as the retention's: which table still has which part of the range depends on it.
const watermarksSQL = `SELECT name, done_until, clock_timestamp() FROM rollup_state WHERE name IN ($1 || '_1m', $1 || '_1h')`

// querier runs a query: a transaction or a connection in one.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// watermarks reads how far each rollup of kind has got: index 1 and 2 of the result
// are the 1-minute and 1-hour rollups' done_until (nil: nothing rolled up).
func (s *Store) watermarks(ctx context.Context, q querier, kind string) (wm [3]*time.Time, now time.Time, err error) {
	rows, err := q.Query(ctx, watermarksSQL, kind)
	if err != nil {
		return wm, now, err
	}
	return scanWatermarks(rows)
}

func scanWatermarks(rows pgx.Rows) (wm [3]*time.Time, now time.Time, err error) {
	defer rows.Close()
	for rows.Next() {
		var name string
		var t *time.Time
		if err := rows.Scan(&name, &t, &now); err != nil {
			return wm, now, err
		}
		if strings.HasSuffix(name, "_1m") {
			wm[1] = t
		} else {
			wm[2] = t
		}
	}
	return wm, now.UTC(), rows.Err()
}

// beginRead begins the read-only, repeatable-read transaction of a history read on
// conn and reads the watermarks of kind in it, in one round trip: the watermarks and
// the rows read after them are of one snapshot.
func (s *Store) beginRead(ctx context.Context, conn *pgx.Conn, kind string) (wm [3]*time.Time, now time.Time, err error) {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	b.Queue(watermarksSQL, kind)
	br := conn.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err = br.Exec(); err != nil {
		return wm, now, err
	}
	rows, err := br.Query()
	if err != nil {
		return wm, now, err
	}
	return scanWatermarks(rows)
}

// endRead returns conn to the pool, rolling back the transaction a failed read left
// open (within the read's own deadline: past it, or when the rollback fails, the pool
// closes the connection instead).
func endRead(ctx context.Context, conn *pgxpool.Conn) {
	if c := conn.Conn(); !c.IsClosed() && c.PgConn().TxStatus() != 'I' && ctx.Err() == nil {
		_, _ = c.Exec(ctx, "rollback")
	}
	conn.Release()
}

// segments says which table answers which part of the time axis. preferred is the
// table a query wants (the coarsest whose resolution divides the step). A rollup
// covers what its source had up to its watermark; raw data and 1-minute rollups are
// deleted before their retention cut, never before they are rolled up (with continuous
// aggregates only in whole chunks: the rest of a chunk stays, and is not read). So: the
// preferred table serves up to its watermark; a finer table serves from the watermark
// of the table above it to its own (recent data not rolled up yet); a coarser table
// serves what is older than the table below it keeps. Each boundary between a table
// and a coarser one falls on a step of the coarser one, so no row of one covers time
// that a row of the other covers too.
func (s *Store) segments(preferred int, wm [3]*time.Time, now time.Time) []bounds {
	r := s.opts.retention
	res := [3]time.Duration{0, minute, hour}
	// lo[i]: where table i's data starts being served, when it serves the older part.
	// Nothing rolled up into the next table means nothing of table i deleted.
	var lo [3]*time.Time
	for i, ret := range []time.Duration{r.Raw, r.Minute} {
		if wm[i+1] == nil {
			continue
		}
		cut := now.Add(-ret)
		if wm[i+1].Before(cut) {
			cut = *wm[i+1]
		}
		up := binStart(cut.Add(res[i+1]-1), res[i+1])
		lo[i] = &up
	}
	// The hour rollups are served back to their retention and no further: what is
	// older waits for the job's deletion (or, with TimescaleDB's continuous
	// aggregates, for the drop of its whole chunk).
	oldest := now.Add(-r.Hour)
	lo[2] = &oldest
	// top[i]: where table i's data ends; the zero time (minus infinity) when nothing
	// was rolled up into it.
	var never time.Time
	top := [3]*time.Time{nil, &never, &never}
	for i := 1; i < 3; i++ {
		if wm[i] != nil {
			top[i] = wm[i]
		}
	}
	out := make([]bounds, 3)
	for i := range 3 {
		switch {
		case i == preferred:
			out[i] = bounds{lo[i], top[i]}
		case i < preferred:
			out[i] = bounds{top[i+1], top[i]}
		default:
			out[i] = bounds{lo[i], lo[i-1]}
			if lo[i-1] == nil {
				out[i].hi = &never // the finer table kept everything
			}
		}
		if out[i].lo != nil && out[i].lo.IsZero() {
			out[i].lo = nil
		}
	}
	return out
}

// HealthChecks implements store.Store.
func (s *Store) HealthChecks(ctx context.Context, q store.HistoryQuery) ([]store.HealthCheck, error) {
	rows, err := s.history(ctx, "health", q)
	if err != nil {
		return nil, err
	}
	out := make([]store.HealthCheck, len(rows))
	for i, r := range rows {
		out[i] = store.HealthCheck{Time: r.Time, Cluster: r.Cluster, Healthy: r.healthy, Values: r.Values, Max: r.Max,
			Samples: r.Samples, Data: r.Data}
	}
	return tail(out, q.EffectiveLimit()), nil
}

// MetricSnapshots implements store.Store.
func (s *Store) MetricSnapshots(ctx context.Context, q store.HistoryQuery) ([]store.MetricSnapshot, error) {
	rows, err := s.history(ctx, "metrics", q)
	if err != nil {
		return nil, err
	}
	out := make([]store.MetricSnapshot, len(rows))
	for i, r := range rows {
		out[i] = r.MetricSnapshot
	}
	return tail(out, q.EffectiveLimit()), nil
}

func tail[T any](s []T, n int) []T {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// row is a history row of either kind (health rows have no member).
type row struct {
	store.MetricSnapshot
	healthy bool
}

// history reads the rows of kind that q selects, oldest first, from the tables the
// segments assign. A step query reads only the newest Limit steps' worth of time first,
// and the whole range only when that finds fewer than Limit steps.
func (s *Store) history(ctx context.Context, kind string, q store.HistoryQuery) ([]row, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if q.Step%time.Microsecond != 0 {
		// date_bin would get a zero or rounded stride.
		return nil, fmt.Errorf("%w: step %v is not a whole number of microseconds", store.ErrInvalidArgument, q.Step)
	}
	var out []row
	err := s.op(ctx, "read "+kind+" history", func(ctx context.Context) error {
		// The transaction's BEGIN goes with the watermarks' query and its COMMIT with
		// the last read: two round trips to PostgreSQL for a read of the newest records
		// instead of four, each a wake-up of the server's process and of this one.
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer endRead(ctx, conn)
		c := conn.Conn()
		wm, now, err := s.beginRead(ctx, c, kind)
		if err != nil {
			return err
		}
		if q.Step == 0 {
			out, err = s.readRows(ctx, c, kind, q, q.Since, wm, now, true)
			return err
		}
		limit := q.EffectiveLimit()
		end := q.Until
		if end.IsZero() {
			end = now
		}
		// Read back from end only as far as the newest limit steps need: a window of
		// limit steps first, twice as long each time it finds fewer (a step shorter
		// than the records' interval, a gap), and the whole range only once the window
		// reaches past it or past what the retention keeps. Reading the whole range
		// at once would hold a year of rows in memory to return limit of them.
		last := store.StepStart(end.Add(-1), q.Step)
		oldest := now.Add(-s.opts.retention.Hour)
		for span := q.Step; time.Duration(limit) <= math.MaxInt64/span; span *= 2 {
			since := last.Add(-time.Duration(limit)*span + q.Step)
			if !since.After(q.Since) || since.Before(oldest) {
				break
			}
			if out, err = s.readRows(ctx, c, kind, q, since, wm, now, false); err != nil {
				return err
			}
			if steps(out, q.Step) >= limit {
				_, err = c.Exec(ctx, "commit")
				return err
			}
			if span > math.MaxInt64/2 {
				break
			}
		}
		out, err = s.readRows(ctx, c, kind, q, q.Since, wm, now, true)
		return err
	})
	return out, err
}

func steps(rows []row, step time.Duration) int {
	n := 0
	var last time.Time
	for _, r := range rows {
		if st := store.StepStart(r.Time, step); n == 0 || !st.Equal(last) {
			n++
			last = st
		}
	}
	return n
}

// readRows reads the rows of kind that q selects from since on, in the read
// transaction open on conn; commit ends the transaction with the same round trip.
func (s *Store) readRows(ctx context.Context, conn *pgx.Conn, kind string, q store.HistoryQuery, since time.Time, wm [3]*time.Time, now time.Time,
	commit bool) ([]row, error) {
	sql, args := s.historySQL(kind, q, since, wm, now)
	if sql == "" {
		if commit {
			_, err := conn.Exec(ctx, "commit")
			return nil, err
		}
		return nil, nil
	}
	// A step query needs no order: bin sorts what it returns, and of raw rows only the
	// last of each step carries Data.
	got, err := func() (got []rec, err error) {
		if !commit {
			rows, err := conn.Query(ctx, sql, args...)
			if err != nil {
				return nil, err
			}
			return collectRecs(rows)
		}
		b := &pgx.Batch{}
		b.Queue(sql, args...)
		b.Queue("commit")
		br := conn.SendBatch(ctx, b)
		defer func() {
			if cerr := br.Close(); err == nil {
				err = cerr
			}
		}()
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		if got, err = collectRecs(rows); err != nil {
			return nil, err
		}
		_, err = br.Exec()
		return got, err
	}()
	if err != nil {
		return nil, err
	}
	s.rowsRead.Add(uint64(len(got)))
	var ids []int32
	for _, r := range got {
		if r.names != nil {
			ids = append(ids, *r.names)
		}
	}
	dict, err := s.lookup(ctx, conn, ids)
	if err != nil {
		return nil, err
	}
	if q.Step > 0 {
		return bin(got, dict, q.Step)
	}
	out := make([]row, 0, len(got))
	for i := 0; i < len(got); {
		// A continuous aggregate has a row per name set in a step whose records
		// changed names: they are one record, as the store's own rollup makes it.
		j := i + 1
		for j < len(got) && sameRecord(got[i], got[j]) {
			j++
		}
		if j > i+1 {
			merged, err := bin(got[i:j], dict, time.Microsecond)
			if err != nil {
				return nil, err
			}
			out = append(out, merged...)
		} else {
			r, err := decode(got[i], dict)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		i = j
	}
	return out, nil
}

// decode is the row of a record, its values (and maxima) by name.
func decode(r rec, dict map[int32][]string) (row, error) {
	out := r.row
	if r.names == nil {
		return out, nil
	}
	ns := dict[*r.names]
	if len(ns) != len(r.vals) || (r.maxs != nil && len(r.maxs) != len(ns)) {
		return out, corrupt(r)
	}
	out.Values = make(map[string]float64, len(ns))
	for j, n := range ns {
		out.Values[n] = r.vals[j]
	}
	if r.maxs != nil {
		out.Max = make(map[string]float64, len(ns))
		for j, n := range ns {
			out.Max[n] = r.maxs[j]
		}
	}
	return out, nil
}

// sameRecord reports whether a and b are rows of one record: of one cluster, member
// and time.
func sameRecord(a, b rec) bool {
	return a.Time.Equal(b.Time) && a.Cluster == b.Cluster && a.Member == b.Member
}

// collectRecs reads the rows of a history query.
func collectRecs(rows pgx.Rows) ([]rec, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (rec, error) {
		var o rec
		var data []byte
		err := r.Scan(&o.Cluster, &o.Member, &o.Time, &o.Samples, &o.healthy, &o.names, &o.vals, &o.maxs, &data)
		o.Time, o.Data = o.Time.UTC(), rawOrNil(data)
		return o, err
	})
}

// historySQL is the query of readRows ("" when no table has any of the range).
func (s *Store) historySQL(kind string, q store.HistoryQuery, since time.Time, wm [3]*time.Time, now time.Time) (string, []any) {
	preferred := 0
	for i, t := range levels(kind) {
		if t.res > 0 && q.Step >= t.res && q.Step%t.res == 0 {
			preferred = i
		}
	}
	want := bounds{}
	if !since.IsZero() {
		want.lo = &since
	}
	if !q.Until.IsZero() {
		want.hi = &q.Until
	}
	member := `''`
	if kind == "metrics" {
		member = "member"
	}
	healthy := "true"
	if kind == "health" {
		healthy = "healthy"
	}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	aggregates := s.caggs.Load() != nil
	var parts []string
	for i, seg := range s.segments(preferred, wm, now) {
		b := seg.intersect(want)
		if b.empty() {
			continue
		}
		t := levels(kind)[i]
		var where []string
		if q.Cluster != "" {
			where = append(where, "cluster = "+arg(q.Cluster))
		}
		if kind == "metrics" && q.Member != "" {
			where = append(where, "member = "+arg(q.Member))
		}
		if b.lo != nil {
			where = append(where, "time >= "+arg(*b.lo))
		}
		if b.hi != nil {
			where = append(where, "time < "+arg(*b.hi))
		}
		var sel string
		if t.res == 0 {
			// Of raw rows, a step query needs only each step's last one's data.
			data := "data"
			if q.Step > 0 {
				data = fmt.Sprintf(`CASE WHEN time = max(time) OVER (PARTITION BY cluster, %s,
	date_bin(%s::interval, time, timestamptz 'epoch')) THEN data END`, member, arg(q.Step))
			}
			sel = fmt.Sprintf(`SELECT cluster, %s AS member, time, 1 AS samples, %s AS healthy, names, vals, NULL::float8[] AS maxs, %s AS data FROM %s`,
				member, healthy, data, t.name)
		} else {
			sel = fmt.Sprintf(`SELECT cluster, %s AS member, time, samples, %s AS healthy, names, vals, maxs, NULL::jsonb AS data FROM %s`,
				member, healthy, t.name)
		}
		if q.Step == 0 && aggregates && t.res > 0 {
			// The newest limit records are at or after the limit-th newest time: the
			// rows of the times read backwards on an index, then ranked. Ranked
			// without that bound, PostgreSQL reads and sorts every row of the
			// aggregate's part of the range (a read of a cluster's newest metrics
			// took a second with a month of minutes).
			cut := "SELECT DISTINCT time FROM " + t.name
			if len(where) > 0 {
				cut += " WHERE " + strings.Join(where, " AND ")
			}
			where = append(where, fmt.Sprintf(`time >= coalesce((SELECT min(time) FROM (%s ORDER BY time DESC LIMIT %s) k), '-infinity')`,
				cut, arg(q.EffectiveLimit())))
		}
		if len(where) > 0 {
			sel += " WHERE " + strings.Join(where, " AND ")
		}
		if q.Step == 0 {
			// The newest of each table by itself, so each is read backwards on its
			// primary key: ordered and limited only over the union, PostgreSQL reads
			// every raw row of the day (a sequential scan) to keep the newest few.
			order := "time DESC, cluster DESC"
			if kind == "metrics" {
				order += ", member DESC"
			}
			if aggregates && t.res > 0 {
				sel = fmt.Sprintf("(%s)", newestRecords(sel, order, arg(q.EffectiveLimit())))
			} else {
				sel = fmt.Sprintf("(%s ORDER BY %s LIMIT %s)", sel, order, arg(q.EffectiveLimit()))
			}
		}
		parts = append(parts, sel)
	}
	if len(parts) == 0 {
		return "", nil
	}
	sql := strings.Join(parts, "\nUNION ALL\n")
	if q.Step == 0 {
		order, limit := "time DESC, cluster DESC, member DESC", arg(q.EffectiveLimit())
		if aggregates {
			sql = newestRecords("SELECT * FROM ("+sql+") u", order, limit)
		} else {
			sql = fmt.Sprintf("SELECT * FROM (%s) u ORDER BY %s LIMIT %s", sql, order, limit)
		}
		sql = fmt.Sprintf("SELECT * FROM (%s) h ORDER BY time, cluster, member", sql)
	}
	return sql, args
}

// newestRecords selects the rows of the newest limit records of sel (by order) when a
// record may be several rows: a continuous aggregate has a row per name set of a step.
func newestRecords(sel, order, limit string) string {
	return fmt.Sprintf(`SELECT cluster, member, time, samples, healthy, names, vals, maxs, data FROM (
	SELECT *, dense_rank() OVER (ORDER BY %s) AS record FROM (%s) r) n WHERE record <= %s`, order, sel, limit)
}

// rec is a history row as read: values still as their name-set id and arrays.
type rec struct {
	row
	names      *int32
	vals, maxs []float64
}

func corrupt(r rec) error {
	return fmt.Errorf("%w: values of %s at %v do not match their names", store.ErrCorrupt, r.Cluster, r.Time)
}

// bin downsamples time-ordered records into one per cluster, member and step, as
// store.DownsampleMetrics does, working on the arrays: maps are made only for the
// records returned.
func bin(recs []rec, dict map[int32][]string, step time.Duration) ([]row, error) {
	type key struct {
		at              time.Time
		cluster, member string
	}
	type acc struct {
		row
		names []string
		means []store.Mean
		top   []float64
	}
	idx := map[key]int{}
	var accs []*acc
	for _, r := range recs {
		k := key{store.StepStart(r.Time, step), r.Cluster, r.Member}
		i, ok := idx[k]
		if !ok {
			i = len(accs)
			idx[k] = i
			a := &acc{row: row{healthy: true}}
			a.Time, a.Cluster, a.Member = k.at, r.Cluster, r.Member
			accs = append(accs, a)
		}
		a := accs[i]
		w := float64(max(r.Samples, 1))
		a.Samples += max(r.Samples, 1)
		a.healthy = a.healthy && r.healthy
		if r.Data != nil {
			a.Data = r.Data
		}
		if r.names == nil {
			continue
		}
		ns := dict[*r.names]
		if len(ns) != len(r.vals) || (r.maxs != nil && len(r.maxs) != len(ns)) {
			return nil, corrupt(r)
		}
		for j, n := range ns {
			// Name sets rarely differ within a series: the same position first.
			p := j
			if p >= len(a.names) || a.names[p] != n {
				if p = slices.Index(a.names, n); p < 0 {
					p = len(a.names)
					a.names = append(a.names, n)
					a.means, a.top = append(a.means, store.Mean{}), append(a.top, r.vals[j])
				}
			}
			v, top := r.vals[j], r.vals[j]
			if r.maxs != nil {
				top = r.maxs[j]
			}
			a.means[p].Add(v, w)
			a.top[p] = max(a.top[p], top)
		}
	}
	out := make([]row, len(accs))
	for i, a := range accs {
		out[i] = a.row
		if len(a.names) == 0 {
			continue
		}
		out[i].Values, out[i].Max = make(map[string]float64, len(a.names)), make(map[string]float64, len(a.names))
		for j, n := range a.names {
			out[i].Values[n] = a.means[j].Value()
			out[i].Max[n] = a.top[j]
		}
	}
	slices.SortStableFunc(out, func(a, b row) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Member, b.Member))
	})
	return out, nil
}
