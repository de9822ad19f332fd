package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/etcd-monitor/etcd-monitor/internal/pgtest"
	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
	"github.com/etcd-monitor/etcd-monitor/store/storetest"
)

// TestMain fails the run if any goroutine outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dsn returns the test server's URL; without one the test skips, or fails in CI.
func dsn(t testing.TB) string { return pgtest.URL(t) }

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// schema returns a fresh schema name for t, dropped when t ends.
func schema(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = "t_" + name + "_" + hex.EncodeToString(b)
	u := dsn(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Logf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return name
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open opens a store in its own schema, closed when t ends.
func open(t testing.TB, sch string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctxT(t), dsn(t), append([]postgres.Option{postgres.WithSchema(sch)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// The store passes the contract of every store.Store.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		sch := schema(t)
		s := open(t, sch)
		return s, func() store.Store {
			require.NoError(t, s.Close())
			return open(t, sch)
		}
	}, storetest.HugeValues, storetest.RecordTimeBound)
}

// hoursAgo returns the start of the hour n hours before the current one. A test that
// lays history out from it, runs the job at a time of its own and then reads by
// PostgreSQL's clock assumes that clock is still in the current hour when it reads: in
// the last two minutes of an hour, hoursAgo waits for the next one. Call it first.
func hoursAgo(t testing.TB, n int) time.Time {
	t.Helper()
	now := time.Now().UTC()
	if left := now.Truncate(time.Hour).Add(time.Hour).Sub(now); left < 2*time.Minute {
		t.Logf("waiting %v for the next hour", left.Round(time.Second))
		time.Sleep(left + time.Second)
		now = time.Now().UTC()
	}
	return now.Truncate(time.Hour).Add(-time.Duration(n) * time.Hour)
}
