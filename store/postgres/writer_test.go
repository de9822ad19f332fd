package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// The history queue is bounded in bytes as well as records: while the writer cannot
// write, a burst of large records (a big cluster's snapshot each) never holds more
// than the byte bound; the oldest are dropped and counted, and what was put is either
// written or counted as dropped.
func TestHistoryQueueBoundedInBytes(t *testing.T) {
	const bound = 64 << 10
	s := open(t, schema(t), postgres.WithQueueBytes(bound))
	ctx := ctxT(t)
	// Hold the writer's first batch: the rollup state row it locks first.
	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, `SELECT 1 FROM rollup_state FOR UPDATE`)
	require.NoError(t, err)

	data := []byte(fmt.Sprintf(`{"members":%q}`, strings.Repeat("x", 10<<10)))
	const n = 100
	for i := range n {
		require.NoError(t, s.PutMetricSnapshots(ctx, []store.MetricSnapshot{{Time: time.Now().Add(time.Duration(i) * time.Millisecond),
			Cluster: "c", Member: "m", Values: map[string]float64{"v": float64(i)}, Data: data}}))
		st := s.Stats()
		assert.LessOrEqual(t, st.QueuedBytes, int64(bound), "after record %d: %+v", i, st)
		assert.Positive(t, st.QueuedBytes)
	}
	st := s.Stats()
	assert.GreaterOrEqual(t, st.Dropped, uint64(n-7), "at most 6 records of 10 KiB fit in 64 KiB: %+v", st)
	assert.Positive(t, st.Errors, "drops are counted as store errors too")

	// One record larger than the bound by itself is dropped at once.
	huge := []byte(fmt.Sprintf(`{"members":%q}`, strings.Repeat("y", bound)))
	require.NoError(t, s.PutMetricSnapshots(ctx, []store.MetricSnapshot{{Time: time.Now(), Cluster: "c", Member: "huge", Data: huge}}))
	assert.LessOrEqual(t, s.Stats().QueuedBytes, int64(bound))

	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, s.Flush(ctx))
	st = s.Stats()
	assert.Equal(t, uint64(n+1), st.Written+st.Dropped, "%+v", st)
	assert.Equal(t, int(st.Written), count(t, s, `SELECT count(*) FROM metrics_raw`))
	assert.Zero(t, count(t, s, `SELECT count(*) FROM metrics_raw WHERE member = 'huge'`))
	assert.Zero(t, st.QueuedBytes)
}

// The pool has room for the API's history reads next to the writer and the job: at
// least DefaultMaxConns connections, unless the DSN sets pool_max_conns.
func TestPoolSize(t *testing.T) {
	s := open(t, schema(t))
	assert.GreaterOrEqual(t, s.Pool().Config().MaxConns, int32(postgres.DefaultMaxConns))
	sep := "?"
	if strings.Contains(dsn(t), "?") {
		sep = "&"
	}
	own, err := postgres.Open(ctxT(t), dsn(t)+sep+"pool_max_conns=3", postgres.WithSchema(schema(t)))
	require.NoError(t, err)
	defer own.Close()
	assert.Equal(t, int32(3), own.Pool().Config().MaxConns)
}

// History put while the store closes is written or counted as dropped, never left
// queued: Written + Dropped is every record a Put accepted (returned nil for), and a
// Put that passed the closed check as Close began, but queues only after the last
// write, is refused.
func TestHistoryPutDuringCloseIsAccounted(t *testing.T) {
	sch := schema(t)
	s, err := postgres.Open(ctxT(t), dsn(t), postgres.WithSchema(sch))
	require.NoError(t, err)
	var accepted atomic.Uint64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := s.PutHealthChecks(context.Background(), []store.HealthCheck{{Cluster: fmt.Sprintf("c%d", g),
					Time: time.Unix(int64(i), 0), Healthy: true}})
				if err != nil {
					assert.ErrorIs(t, err, store.ErrClosed)
					return
				}
				accepted.Add(1)
			}
		})
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Greater(c, accepted.Load(), uint64(100)) }, 10*time.Second, time.Millisecond)
	require.NoError(t, s.Close())
	wg.Wait()
	err = postgres.QueuePastClosedCheck(s, []store.HealthCheck{{Cluster: "late", Time: time.Now(), Healthy: true}})
	require.ErrorIs(t, err, store.ErrClosed, "a Put that queues after Close wrote the queue")
	st := s.Stats()
	assert.Equal(t, accepted.Load(), st.Written+st.Dropped, "%+v", st)
	assert.Zero(t, st.Queued)
}

// A record PostgreSQL refuses as data costs only itself: the others put with it in one
// batch are written and readable, and the refused one is dropped and counted once (in
// Dropped and in Errors).
func TestHistoryBadRecordCostsOnlyItself(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	const n, bad = 9, 4
	for _, tc := range []struct {
		name   string
		health bool
		poison func(*store.MetricSnapshot)
	}{
		{"NUL in a health check's cluster", true, func(m *store.MetricSnapshot) { m.Cluster = "c\x00" }},
		{"member not UTF-8", false, func(m *store.MetricSnapshot) { m.Member = "m\xff" }},
		{"NUL in a value name", false, func(m *store.MetricSnapshot) { m.Values = map[string]float64{"v\x00": 1} }},
		{"JSON with \\u0000", false, func(m *store.MetricSnapshot) { m.Data = []byte(`{"a":"\u0000"}`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, schema(t))
			ctx := ctxT(t)
			snaps := make([]store.MetricSnapshot, n)
			for i := range snaps {
				snaps[i] = store.MetricSnapshot{Time: base.Add(time.Duration(i) * time.Second), Cluster: "c", Member: "m",
					Values: map[string]float64{"v": float64(i)}, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}
			}
			tc.poison(&snaps[bad])
			// One Put: its records are queued at once and written as one batch.
			if tc.health {
				checks := make([]store.HealthCheck, n)
				for i, m := range snaps {
					checks[i] = store.HealthCheck{Time: m.Time, Cluster: m.Cluster, Healthy: true, Values: m.Values, Data: m.Data}
				}
				require.NoError(t, s.PutHealthChecks(ctx, checks))
			} else {
				require.NoError(t, s.PutMetricSnapshots(ctx, snaps))
			}
			require.NoError(t, s.Flush(ctx))

			st := s.Stats()
			assert.Equal(t, uint64(n-1), st.Written, "%+v", st)
			assert.Equal(t, uint64(1), st.Dropped, "%+v", st)
			assert.Equal(t, uint64(1), st.Errors, "%+v", st)
			var got []float64
			if tc.health {
				hs, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "c"})
				require.NoError(t, err)
				for _, h := range hs {
					got = append(got, h.Values["v"])
				}
			} else {
				ms, err := s.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "c"})
				require.NoError(t, err)
				for _, m := range ms {
					got = append(got, m.Values["v"])
				}
			}
			assert.Equal(t, []float64{0, 1, 2, 3, 5, 6, 7, 8}, got, "the records put with the refused one")

			// The writer goes on: a record put afterwards is written.
			require.NoError(t, s.PutMetricSnapshots(ctx, []store.MetricSnapshot{{Time: base.Add(time.Hour), Cluster: "after", Values: map[string]float64{"v": 1}}}))
			require.NoError(t, s.Flush(ctx))
			assert.Equal(t, uint64(n), s.Stats().Written)
		})
	}
	// A time PostgreSQL cannot store past MaxRecordTime is refused when put, with the
	// records put with it.
	t.Run("time out of range", func(t *testing.T) {
		s := open(t, schema(t))
		ctx := ctxT(t)
		far := time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)
		ok := store.MetricSnapshot{Time: base, Cluster: "c", Member: "m", Values: map[string]float64{"v": 1}}
		require.ErrorIs(t, s.PutMetricSnapshots(ctx, []store.MetricSnapshot{ok, {Time: far, Cluster: "c", Member: "m"}}), store.ErrInvalidArgument)
		require.ErrorIs(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: base, Cluster: "c"}, {Time: far, Cluster: "c"}}), store.ErrInvalidArgument)
		require.NoError(t, s.Flush(ctx))
		st := s.Stats()
		assert.Zero(t, st.Written, "%+v", st)
		assert.Zero(t, st.Dropped, "%+v", st)
	})
}
