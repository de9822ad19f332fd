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
