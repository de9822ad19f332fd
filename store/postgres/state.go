package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// fence is the lease a fenced write is made under; nil for an unfenced one.
type fence struct {
	name, holder string
	token        int64
}

// check refuses the transaction unless the lease is still the holder's with the same
// token and unexpired. The row is locked FOR SHARE until the transaction ends, so a
// takeover (which updates the row) waits for the write, and the new holder reads it.
func (f *fence) check(ctx context.Context, tx pgx.Tx) error {
	if f == nil {
		return nil
	}
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND token = $3
	AND expires > clock_timestamp() FOR SHARE`, f.name, f.holder, f.token).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: lease %q token %d of %q", ErrFenced, f.name, f.token, f.holder)
	}
	return err
}

func (s *Store) tx(ctx context.Context, f *fence, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := f.check(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// jsonOrNil returns raw as a jsonb parameter: nil for empty, an error for invalid JSON.
func jsonOrNil(what string, raw json.RawMessage) (*string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: %s is not valid JSON", store.ErrInvalidArgument, what)
	}
	v := string(raw)
	return &v, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func rawOrNil(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// Alerts implements store.Store.
func (s *Store) Alerts(ctx context.Context) (out []store.Alert, err error) {
	err = s.op(ctx, "alerts", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT fingerprint, cluster, state, active_at, fired_at, data FROM alerts ORDER BY fingerprint`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Alert, error) {
			var a store.Alert
			var fired *time.Time
			var data []byte
			err := r.Scan(&a.Fingerprint, &a.Cluster, &a.State, &a.ActiveAt, &fired, &data)
			a.ActiveAt, a.FiredAt, a.Data = a.ActiveAt.UTC(), timeOrZero(fired), rawOrNil(data)
			return a, err
		})
		return err
	})
	return out, err
}

// PutAlerts implements store.Store.
func (s *Store) PutAlerts(ctx context.Context, put []store.Alert, del []string) error {
	return s.putAlerts(ctx, nil, put, del)
}

func (s *Store) putAlerts(ctx context.Context, f *fence, put []store.Alert, del []string) error {
	data := make([]*string, len(put))
	for i, a := range put {
		if a.Fingerprint == "" {
			return fmt.Errorf("%w: put[%d].fingerprint is empty", store.ErrInvalidArgument, i)
		}
		var err error
		if data[i], err = jsonOrNil(fmt.Sprintf("put[%d].data", i), a.Data); err != nil {
			return err
		}
	}
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	fps := slices.Clone(del)
	for _, a := range put {
		fps = append(fps, a.Fingerprint)
	}
	return s.op(ctx, "put alerts", func(ctx context.Context) error {
		return s.tx(ctx, f, func(tx pgx.Tx) error {
			// The alerts as they were, locked, for the transitions this write makes.
			rows, err := tx.Query(ctx, `SELECT fingerprint, cluster, state, data FROM alerts WHERE fingerprint = ANY($1) FOR UPDATE`, fps)
			if err != nil {
				return err
			}
			before := map[string]store.Alert{}
			var a store.Alert
			var raw []byte
			if _, err := pgx.ForEachRow(rows, []any{&a.Fingerprint, &a.Cluster, &a.State, &raw}, func() error {
				a.Data = rawOrNil(slices.Clone(raw))
				before[a.Fingerprint] = a
				return nil
			}); err != nil {
				return err
			}
			b := &pgx.Batch{}
			if len(del) > 0 {
				b.Queue(`DELETE FROM alerts WHERE fingerprint = ANY($1)`, del)
			}
			for i, a := range put {
				b.Queue(`INSERT INTO alerts (fingerprint, cluster, state, active_at, fired_at, data) VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (fingerprint) DO UPDATE SET cluster = excluded.cluster, state = excluded.state,
	active_at = excluded.active_at, fired_at = excluded.fired_at, data = excluded.data`,
					a.Fingerprint, a.Cluster, a.State, a.ActiveAt, nullTime(a.FiredAt), data[i])
			}
			for _, tr := range store.Transitions(before, put, del, time.Now()) {
				b.Queue(`INSERT INTO alert_history (time, fingerprint, cluster, state, data) VALUES ($1, $2, $3, $4, $5)`,
					tr.Time, tr.Fingerprint, tr.Cluster, tr.State, rawOrNil(tr.Data))
			}
			return tx.SendBatch(ctx, b).Close()
		})
	})
}

// Groups implements store.Store.
func (s *Store) Groups(ctx context.Context) (out []store.Group, err error) {
	err = s.op(ctx, "groups", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT receiver, group_key, sent_at, firing, resolved, data FROM notification_groups ORDER BY receiver, group_key`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Group, error) {
			var g store.Group
			var data []byte
			err := r.Scan(&g.Receiver, &g.GroupKey, &g.SentAt, &g.Firing, &g.Resolved, &data)
			g.SentAt, g.Data = g.SentAt.UTC(), rawOrNil(data)
			return g, err
		})
		return err
	})
	return out, err
}

// PutGroup implements store.Store.
func (s *Store) PutGroup(ctx context.Context, g store.Group) error { return s.putGroup(ctx, nil, g) }

func (s *Store) putGroup(ctx context.Context, f *fence, g store.Group) error {
	if g.Receiver == "" {
		return fmt.Errorf("%w: group receiver is empty", store.ErrInvalidArgument)
	}
	data, err := jsonOrNil("group data", g.Data)
	if err != nil {
		return err
	}
	return s.op(ctx, "put group", func(ctx context.Context) error {
		return s.tx(ctx, f, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO notification_groups (receiver, group_key, sent_at, firing, resolved, data)
	VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (receiver, group_key) DO UPDATE SET sent_at = excluded.sent_at,
	firing = excluded.firing, resolved = excluded.resolved, data = excluded.data`,
				g.Receiver, g.GroupKey, g.SentAt, g.Firing, g.Resolved, data)
			return err
		})
	})
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, receiver, key string) error {
	return s.deleteGroup(ctx, nil, receiver, key)
}

func (s *Store) deleteGroup(ctx context.Context, f *fence, receiver, key string) error {
	return s.op(ctx, "delete group", func(ctx context.Context) error {
		return s.tx(ctx, f, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM notification_groups WHERE receiver = $1 AND group_key = $2`, receiver, key)
			return err
		})
	})
}

// AppendNotification implements store.Store. IDs increase; under concurrent appends
// from several processes they are unique but may commit out of order.
func (s *Store) AppendNotification(ctx context.Context, n store.Notification) (store.Notification, error) {
	return s.appendNotification(ctx, nil, n)
}

func (s *Store) appendNotification(ctx context.Context, f *fence, n store.Notification) (store.Notification, error) {
	labels, err := json.Marshal(n.GroupLabels)
	if err != nil {
		return n, fmt.Errorf("%w: group labels: %w", store.ErrInvalidArgument, err)
	}
	err = s.op(ctx, "append notification", func(ctx context.Context) error {
		return s.tx(ctx, f, func(tx pgx.Tx) error {
			var id int64
			err := tx.QueryRow(ctx, `INSERT INTO notifications (time, receiver, group_key, group_labels, attempt, status, error, firing, resolved)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
				n.Time, n.Receiver, n.GroupKey, string(labels), n.Attempt, n.Status, n.Error, n.Firing, n.Resolved).Scan(&id)
			n.ID = uint64(id)
			return err
		})
	})
	return n, err
}

// Notifications implements store.Store.
func (s *Store) Notifications(ctx context.Context, q store.NotificationQuery) (out []store.Notification, err error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	err = s.op(ctx, "notifications", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id, time, receiver, group_key, group_labels, attempt, status, error, firing, resolved
	FROM notifications WHERE ($1 = '' OR receiver = $1) AND ($2 = '' OR group_key = $2) ORDER BY id DESC LIMIT $3`,
			q.Receiver, q.GroupKey, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Notification, error) {
			var n store.Notification
			var id int64
			var labels []byte
			err := r.Scan(&id, &n.Time, &n.Receiver, &n.GroupKey, &labels, &n.Attempt, &n.Status, &n.Error, &n.Firing, &n.Resolved)
			if err == nil && len(labels) > 0 {
				err = json.Unmarshal(labels, &n.GroupLabels)
			}
			n.ID, n.Time = uint64(id), n.Time.UTC()
			return n, err
		})
		return err
	})
	return out, err
}

// AlertHistory implements store.AlertHistorian.
func (s *Store) AlertHistory(ctx context.Context, q store.AlertHistoryQuery) (out []store.AlertTransition, err error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	err = s.op(ctx, "alert history", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id, time, fingerprint, cluster, state, data FROM alert_history
	WHERE ($1 = '' OR cluster = $1) AND time >= $2 ORDER BY id DESC LIMIT $3`, q.Cluster, q.Since, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AlertTransition, error) {
			var tr store.AlertTransition
			var id int64
			var data []byte
			err := r.Scan(&id, &tr.Time, &tr.Fingerprint, &tr.Cluster, &tr.State, &data)
			tr.ID, tr.Time, tr.Data = uint64(id), tr.Time.UTC(), rawOrNil(data)
			return tr, err
		})
		return err
	})
	slices.Reverse(out)
	return out, err
}

// Silences implements store.Store.
func (s *Store) Silences(ctx context.Context) (out []store.Silence, err error) {
	err = s.op(ctx, "silences", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT record FROM silences ORDER BY id`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Silence, error) {
			var raw []byte
			var sil store.Silence
			if err := r.Scan(&raw); err != nil {
				return sil, err
			}
			if err := json.Unmarshal(raw, &sil); err != nil {
				return sil, fmt.Errorf("%w: silence: %w", store.ErrCorrupt, err)
			}
			return sil, nil
		})
		return err
	})
	return out, err
}

// PutSilence implements store.Store.
func (s *Store) PutSilence(ctx context.Context, sil store.Silence) error {
	return s.putSilence(ctx, nil, sil)
}

func (s *Store) putSilence(ctx context.Context, f *fence, sil store.Silence) error {
	if sil.ID == "" {
		return fmt.Errorf("%w: silence id is empty", store.ErrInvalidArgument)
	}
	rec, err := json.Marshal(sil)
	if err != nil {
		return fmt.Errorf("%w: silence: %w", store.ErrInvalidArgument, err)
	}
	return s.op(ctx, "put silence", func(ctx context.Context) error {
		return s.tx(ctx, f, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO silences (id, record) VALUES ($1, $2)
	ON CONFLICT (id) DO UPDATE SET record = excluded.record`, sil.ID, string(rec))
			return err
		})
	})
}

// DeleteSilence implements store.Store.
func (s *Store) DeleteSilence(ctx context.Context, id string) error {
	return s.deleteSilence(ctx, nil, id)
}

func (s *Store) deleteSilence(ctx context.Context, f *fence, id string) error {
	return s.op(ctx, "delete silence", func(ctx context.Context) error {
		return s.tx(ctx, f, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM silences WHERE id = $1`, id)
			if err == nil && tag.RowsAffected() == 0 {
				return fmt.Errorf("%w: silence %q", store.ErrNotFound, id)
			}
			return err
		})
	})
}

// PutBenchmark implements store.Store.
func (s *Store) PutBenchmark(ctx context.Context, b store.Benchmark) error {
	if b.ID == "" {
		return fmt.Errorf("%w: benchmark id is empty", store.ErrInvalidArgument)
	}
	data, err := jsonOrNil("benchmark data", b.Data)
	if err != nil {
		return err
	}
	return s.op(ctx, "put benchmark", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO benchmarks (id, time, cluster, name, data) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (id) DO UPDATE SET time = excluded.time, cluster = excluded.cluster, name = excluded.name, data = excluded.data`,
			b.ID, b.Time, b.Cluster, b.Name, data)
		return err
	})
}

// Benchmarks implements store.Store.
func (s *Store) Benchmarks(ctx context.Context, q store.BenchmarkQuery) (out []store.Benchmark, err error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	err = s.op(ctx, "benchmarks", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id, time, cluster, name, data FROM benchmarks
	WHERE ($1 = '' OR cluster = $1) ORDER BY time DESC, id LIMIT $2`, q.Cluster, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Benchmark, error) {
			var b store.Benchmark
			var data []byte
			err := r.Scan(&b.ID, &b.Time, &b.Cluster, &b.Name, &data)
			b.Time, b.Data = b.Time.UTC(), rawOrNil(data)
			return b, err
		})
		return err
	})
	return out, err
}

// PutMaintenanceOp implements store.Store.
func (s *Store) PutMaintenanceOp(ctx context.Context, op store.MaintenanceOp) error {
	if err := op.Validate(); err != nil {
		return err
	}
	data, err := jsonOrNil("maintenance op data", op.Data)
	if err != nil {
		return err
	}
	return s.op(ctx, "put maintenance op", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO maintenance_ops (id, cluster, kind, state, started, finished, alert, dry_run, data)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET cluster = excluded.cluster, kind = excluded.kind,
	state = excluded.state, started = excluded.started, finished = excluded.finished, alert = excluded.alert,
	dry_run = excluded.dry_run, data = excluded.data`,
			op.ID, op.Cluster, op.Kind, op.State, op.Started, nullTime(op.Finished), op.Alert, op.DryRun, data)
		return err
	})
}

// MaintenanceOps implements store.Store.
func (s *Store) MaintenanceOps(ctx context.Context, q store.MaintenanceQuery) (out []store.MaintenanceOp, err error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = 100
	}
	err = s.op(ctx, "maintenance ops", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id, cluster, kind, state, started, finished, alert, dry_run, data FROM maintenance_ops
	WHERE ($1 = '' OR cluster = $1) ORDER BY started DESC, id LIMIT $2`, q.Cluster, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MaintenanceOp, error) {
			var op store.MaintenanceOp
			var fin *time.Time
			var data []byte
			err := r.Scan(&op.ID, &op.Cluster, &op.Kind, &op.State, &op.Started, &fin, &op.Alert, &op.DryRun, &data)
			op.Started, op.Finished, op.Data = op.Started.UTC(), timeOrZero(fin), rawOrNil(data)
			return op, err
		})
		return err
	})
	return out, err
}
