package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// Daemons starting at once on an empty database apply each migration once; a later
// start applies nothing; a schema newer than the program is refused.
func TestMigrationsConcurrentStarters(t *testing.T) {
	sch := schema(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(context.Background(), dsn(t), postgres.WithSchema(sch)) })
	}
	wg.Wait()
	for i, s := range stores {
		require.NoError(t, errs[i])
		defer s.Close()
	}
	s := stores[0]
	assert.Equal(t, postgres.SchemaVersion, count(t, s, `SELECT count(*) FROM schema_migrations`))
	assert.Equal(t, postgres.SchemaVersion, count(t, s, `SELECT count(DISTINCT version) FROM schema_migrations`))
	assert.False(t, s.Timescale(), "the test server has no timescaledb")

	again := open(t, sch)
	assert.Equal(t, postgres.SchemaVersion, count(t, again, `SELECT count(*) FROM schema_migrations`))
	require.NoError(t, again.PutAlerts(ctxT(t), []store.Alert{{Fingerprint: "a", State: "firing"}}, nil))

	_, err := s.Pool().Exec(ctxT(t), `INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')`)
	require.NoError(t, err)
	_, err = postgres.Open(ctxT(t), dsn(t), postgres.WithSchema(sch))
	assert.ErrorIs(t, err, postgres.ErrSchema)
}

// A migration that fails leaves no trace: neither its tables nor its version.
func TestMigrationFailureRollsBack(t *testing.T) {
	sch := schema(t)
	conn, err := pgx.Connect(ctxT(t), dsn(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	// A table in the way of migration 2 (history).
	_, err = conn.Exec(ctxT(t), `CREATE SCHEMA `+sch+`; CREATE TABLE `+sch+`.health_1m (x int)`)
	require.NoError(t, err)
	_, err = postgres.Open(ctxT(t), dsn(t), postgres.WithSchema(sch))
	require.ErrorIs(t, err, postgres.ErrSchema)
	assert.Contains(t, err.Error(), "migration 2 (history)")
	var versions []int
	rows, err := conn.Query(ctxT(t), `SELECT version FROM `+sch+`.schema_migrations ORDER BY version`)
	require.NoError(t, err)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	assert.Equal(t, []int{1}, versions)
	var raw *string
	require.NoError(t, conn.QueryRow(ctxT(t), `SELECT to_regclass('`+sch+`.health_raw')::text`).Scan(&raw))
	assert.Nil(t, raw, "migration 2's first table rolled back")

	_, err = conn.Exec(ctxT(t), `DROP TABLE `+sch+`.health_1m`)
	require.NoError(t, err)
	s := open(t, sch)
	assert.Equal(t, postgres.SchemaVersion, count(t, s, `SELECT count(*) FROM schema_migrations`))
}

func TestOpenArguments(t *testing.T) {
	ctx := ctxT(t)
	for name, opts := range map[string][]postgres.Option{
		"nil option":    {nil},
		"nil logger":    {postgres.WithLogger(nil)},
		"bad schema":    {postgres.WithSchema("Robert'); DROP TABLE x;--")},
		"raw retention": {postgres.WithRetention(postgres.Retention{Raw: time.Second})},
		"minute < raw":  {postgres.WithRetention(postgres.Retention{Raw: 48 * time.Hour, Minute: 24 * time.Hour})},
		"queue":         {postgres.WithQueueSize(0)},
		"queue bytes":   {postgres.WithQueueBytes(1023)},
		"op timeout":    {postgres.WithOpTimeout(0)},
		"job interval":  {postgres.WithJobInterval(-1)},
		"notifications": {postgres.WithMaxNotifications(0)},
	} {
		_, err := postgres.Open(ctx, "postgres://localhost:1/x", opts...)
		assert.ErrorIs(t, err, postgres.ErrInvalidArgument, name)
	}
	_, err := postgres.Open(ctx, "")
	assert.ErrorIs(t, err, postgres.ErrInvalidArgument)
	for _, d := range []string{"postgres://user:s3cret@[::1", "host=x password = s3cret port=abc", "host=x port=abc password= s3cret",
		"postgres://user:s3cret@127.0.0.1:abc/x", "host=x password='s3 cret' port=abc"} {
		_, err = postgres.Open(ctx, d)
		assert.ErrorIs(t, err, postgres.ErrInvalidArgument, d)
		assert.NotContains(t, err.Error(), "s3cret", d)
		assert.NotContains(t, err.Error(), "cret", d)
	}
	_, err = postgres.Open(ctx, "host=x password = s3cret port=abc")
	assert.ErrorContains(t, err, "invalid port", "the reason is kept")
	// Nothing listens on port 1: the error says so, without the password.
	_, err = postgres.Open(ctx, "postgres://user:s3cret@127.0.0.1:1/x?connect_timeout=1")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

// store.OpenConfig opens the PostgreSQL store when this package is linked in, with the
// DSN from the environment.
func TestOpenConfig(t *testing.T) {
	sch := schema(t)
	t.Setenv("TEST_ETCD_MONITOR_DSN", dsn(t))
	st, err := store.OpenConfig(ctxT(t), store.Config{Type: "postgres", DSNEnv: "TEST_ETCD_MONITOR_DSN", Schema: sch,
		QueueSize: 10, QueueBytes: 1 << 20, Retention: store.Retention{Raw: time.Hour}})
	require.NoError(t, err)
	defer st.Close()
	pg, ok := st.(*postgres.Store)
	require.True(t, ok)
	require.NoError(t, pg.PutBenchmark(ctxT(t), store.Benchmark{ID: "b", Time: time.Now()}))
	assert.Equal(t, 1, count(t, pg, `SELECT count(*) FROM benchmarks`))
}

// The migration lock's release is bounded like every other call: when the network
// drops the connection's packets just as Open releases the lock, Open fails within
// the operation timeout plus pgx's 15 s bound on closing a connection that does not
// answer, instead of waiting for TCP to give up (minutes, or for ever here).
func TestMigrationUnlockBounded(t *testing.T) {
	p, u := newProxy(t, dsn(t), "pg_advisory_unlock")
	sch := schema(t)
	done := make(chan error, 1)
	go func() {
		s, err := postgres.Open(context.Background(), u, postgres.WithSchema(sch), postgres.WithOpTimeout(500*time.Millisecond))
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(40 * time.Second):
		t.Fatal("Open still waits for the unlock's answer")
	}
	assert.True(t, p.holed.Load(), "the unlock was sent")
	require.Error(t, err)
	assert.ErrorContains(t, err, "migration unlock")
}
