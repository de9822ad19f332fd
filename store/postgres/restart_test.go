package postgres_test

import (
	"context"
	"github.com/etcd-monitor/etcd-monitor/internal/pgtest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// PostgreSQL outages under a running store, on a server of the test's own. The stores
// keep the default operation timeout: it also bounds each new connection, and Open
// fails when its first connection takes longer, which on a loaded machine a server just
// started (or restarted) can take well over a second to accept.
func TestPostgresOutage(t *testing.T) {
	srv := pgtest.Start(t)
	t.Run("Restart", func(t *testing.T) { testRestart(t, srv) })
	t.Run("DownForGood", func(t *testing.T) { testDownForGood(t, srv) })
}

// PostgreSQL stops and starts again under a running store: history keeps being
// accepted without blocking, the writer retries and catches up (nothing lost within the
// queue bound), calls made while it is down fail fast and are counted, and the store
// works again afterwards on fresh connections.
func testRestart(t *testing.T, srv *pgtest.Server) {
	s, err := postgres.Open(ctxT(t), srv.URL, postgres.WithSchema("restart"))
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()

	var put atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	base := time.Now().Add(-time.Hour)
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			err := s.PutHealthChecks(ctx, []store.HealthCheck{{Time: base.Add(time.Duration(i) * time.Millisecond), Cluster: "c", Healthy: true}})
			assert.NoError(t, err)
			put.Add(1)
		}
	})
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Greater(c, s.Stats().Written, uint64(10)) }, 5*time.Second, 10*time.Millisecond)

	srv.Ctl(t, "-m", "fast", "stop")
	errsBefore := s.Stats().Errors
	err = s.PutAlerts(ctx, []store.Alert{{Fingerprint: "during", State: "firing", ActiveAt: time.Now()}}, nil)
	require.Error(t, err, "a synchronous write while PostgreSQL is down fails")
	_, err = s.Alerts(ctx)
	require.Error(t, err)
	assert.GreaterOrEqual(t, s.Stats().Errors, errsBefore+2, "counted")
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Greater(c, s.Stats().Queued, 0, "history waits in the queue")
	}, 5*time.Second, 10*time.Millisecond)
	// History writes go on while PostgreSQL is down: none waits for it.
	downPuts := put.Load()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Greater(c, put.Load(), downPuts+20, "history writes while PostgreSQL is down")
	}, 10*time.Second, 10*time.Millisecond)
	srv.Ctl(t, "-l", filepath.Join(filepath.Dir(srv.Data), "server.log"), "start")

	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NoError(c, s.PutAlerts(ctx, []store.Alert{{Fingerprint: "after", State: "firing", ActiveAt: time.Now()}}, nil))
	}, 10*time.Second, 50*time.Millisecond)
	close(stop)
	wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, s.Flush(fctx))

	st := s.Stats()
	t.Logf("after the restart: %+v, %d records put", st, put.Load())
	assert.Zero(t, st.Dropped)
	assert.Equal(t, uint64(put.Load()), st.Written, "every record written once the server was back")
	got, err := s.HealthChecks(ctx, store.HistoryQuery{Limit: 1 << 20})
	require.NoError(t, err)
	assert.Len(t, got, int(put.Load()))
	alerts, err := s.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	assert.Equal(t, "after", alerts[0].Fingerprint)
}

// With PostgreSQL gone for good, the queue stays within its bound: the oldest records
// are dropped and counted, Put never blocks, and Close returns within its timeout.
func testDownForGood(t *testing.T, srv *pgtest.Server) {
	s, err := postgres.Open(ctxT(t), srv.URL, postgres.WithQueueSize(100))
	require.NoError(t, err)
	srv.Ctl(t, "-m", "immediate", "stop")
	for i := range 250 {
		require.NoError(t, s.PutMetricSnapshots(context.Background(), []store.MetricSnapshot{{Time: time.Now().Add(time.Duration(i)), Cluster: "c"}}))
	}
	st := s.Stats()
	assert.LessOrEqual(t, st.Queued, 100)
	assert.GreaterOrEqual(t, st.Dropped, uint64(150))
	require.NoError(t, s.Close())
	st = s.Stats()
	assert.Equal(t, uint64(250), st.Dropped+st.Written, "every record accounted for")
	assert.ErrorIs(t, s.PutHealthChecks(context.Background(), []store.HealthCheck{{Time: time.Now(), Cluster: "c"}}), store.ErrClosed)
}

// Records being written are not the queue's to drop: when new records overflow the
// queue while a batch is in flight, the drop counts only records that were never
// written, so Written + Dropped is what was put, and Written is what the table has.
func TestHistoryAccountingWithABatchInFlight(t *testing.T) {
	s := open(t, schema(t), postgres.WithQueueSize(10))
	ctx := ctxT(t)
	put := func(from int) {
		var hs []store.HealthCheck
		for i := from; i < from+10; i++ {
			hs = append(hs, store.HealthCheck{Time: time.Now().Add(time.Duration(i) * time.Millisecond), Cluster: "c"})
		}
		require.NoError(t, s.PutHealthChecks(ctx, hs))
	}
	// Hold the writer's batch: the rollup state row it locks first.
	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, `SELECT 1 FROM rollup_state FOR UPDATE`)
	require.NoError(t, err)
	put(0)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		var n int
		err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%rollup_state%KEY SHARE%'`).Scan(&n)
		if assert.NoError(c, err) {
			assert.Equal(c, 1, n)
		}
	}, 10*time.Second, 10*time.Millisecond, "the batch waits")
	put(10)
	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, s.Flush(ctx))
	st := s.Stats()
	assert.Equal(t, uint64(20), st.Written+st.Dropped, "%+v", st)
	assert.Equal(t, int(st.Written), count(t, s, `SELECT count(*) FROM health_raw`))
}
