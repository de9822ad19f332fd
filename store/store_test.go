package store_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/storetest"
)

// TestMain fails the run if any goroutine outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Both implementations pass the same contract.
func TestContract(t *testing.T) {
	impls := map[string]func(t *testing.T) (store.Store, func() store.Store){
		"memory": func(t *testing.T) (store.Store, func() store.Store) {
			s := store.NewMemory()
			return s, func() store.Store { return s }
		},
		"bolt": func(t *testing.T) (store.Store, func() store.Store) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := store.Open(path)
			require.NoError(t, err)
			return s, func() store.Store {
				require.NoError(t, s.Close())
				s2, err := store.Open(path)
				require.NoError(t, err)
				t.Cleanup(func() { s2.Close() })
				return s2
			}
		},
	}
	for name, open := range impls {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, reopen := open(t)
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			require.NoError(t, s.PutAlerts(ctx, []store.Alert{
				{Fingerprint: "a", Cluster: "prod", State: "firing", ActiveAt: at, FiredAt: at.Add(time.Minute), Data: json.RawMessage(`{"x":1}`)},
				{Fingerprint: "b", State: "pending", ActiveAt: at},
			}, nil))
			require.NoError(t, s.PutAlerts(ctx, nil, []string{"b"}))
			assert.ErrorIs(t, s.PutAlerts(ctx, []store.Alert{{}}, nil), store.ErrInvalidArgument)
			require.NoError(t, s.PutGroup(ctx, store.Group{Receiver: "pd", GroupKey: "k1", SentAt: at, Firing: []string{"a"}}))
			require.NoError(t, s.PutGroup(ctx, store.Group{Receiver: "pd", GroupKey: "k2", SentAt: at}))
			require.NoError(t, s.DeleteGroup(ctx, "pd", "k2"))
			for i := range 5 {
				n, err := s.AppendNotification(ctx, store.Notification{Time: at.Add(time.Duration(i) * time.Second), Receiver: []string{"pd", "slack"}[i%2], Attempt: 1, Status: "sent"})
				require.NoError(t, err)
				assert.Equal(t, uint64(i+1), n.ID)
			}
			require.NoError(t, s.PutSilence(ctx, store.Silence{ID: "s1", Matchers: []store.Matcher{{Name: "alertname", Value: "X", IsEqual: true}}, EndsAt: at.Add(time.Hour)}))
			require.NoError(t, s.PutSilence(ctx, store.Silence{ID: "s2"}))
			require.NoError(t, s.DeleteSilence(ctx, "s2"))
			assert.ErrorIs(t, s.DeleteSilence(ctx, "s2"), store.ErrNotFound)
			require.NoError(t, s.PutBenchmark(ctx, store.Benchmark{ID: "b1", Time: at, Cluster: "prod", Data: json.RawMessage(`{"ops":1}`)}))
			require.NoError(t, s.PutBenchmark(ctx, store.Benchmark{ID: "b2", Time: at.Add(time.Hour), Cluster: "lab"}))

			s = reopen()
			alerts, err := s.Alerts(ctx)
			require.NoError(t, err)
			require.Len(t, alerts, 1)
			assert.Equal(t, "a", alerts[0].Fingerprint)
			assert.True(t, alerts[0].FiredAt.Equal(at.Add(time.Minute)))
			assert.JSONEq(t, `{"x":1}`, string(alerts[0].Data))
			groups, err := s.Groups(ctx)
			require.NoError(t, err)
			require.Len(t, groups, 1)
			assert.Equal(t, []string{"a"}, groups[0].Firing)
			ns, err := s.Notifications(ctx, store.NotificationQuery{Receiver: "pd", Limit: 2})
			require.NoError(t, err)
			require.Len(t, ns, 2)
			assert.Equal(t, uint64(5), ns[0].ID, "newest first")
			assert.Equal(t, uint64(3), ns[1].ID)
			sils, err := s.Silences(ctx)
			require.NoError(t, err)
			require.Len(t, sils, 1)
			assert.Equal(t, "X", sils[0].Matchers[0].Value)
			bs, err := s.Benchmarks(ctx, store.BenchmarkQuery{})
			require.NoError(t, err)
			require.Len(t, bs, 2)
			assert.Equal(t, "b2", bs[0].ID, "newest first")
			bs, err = s.Benchmarks(ctx, store.BenchmarkQuery{Cluster: "prod"})
			require.NoError(t, err)
			require.Len(t, bs, 1)

			require.NoError(t, s.Close())
			require.NoError(t, s.Close(), "idempotent")
			_, err = s.Alerts(ctx)
			assert.ErrorIs(t, err, store.ErrClosed)
		})
	}
}

// The notification log keeps the newest records within its bound.
func TestNotificationLogBounded(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.WithMaxNotifications(3))
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	for range 10 {
		_, err := s.AppendNotification(ctx, store.Notification{Receiver: "r"})
		require.NoError(t, err)
	}
	ns, err := s.Notifications(ctx, store.NotificationQuery{Limit: 100})
	require.NoError(t, err)
	require.Len(t, ns, 3)
	assert.Equal(t, []uint64{10, 9, 8}, []uint64{ns[0].ID, ns[1].ID, ns[2].ID})
}

// Files that cannot be used are errors naming the file; nothing is reset.
func TestOpenErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()

	garbage := filepath.Join(dir, "garbage.db")
	require.NoError(t, os.WriteFile(garbage, []byte("definitely not bbolt, and long enough to have a header page or two"), 0o600))
	_, err := store.Open(garbage)
	assert.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), garbage)
	b, _ := os.ReadFile(garbage)
	assert.Contains(t, string(b), "definitely not bbolt", "left as it was")

	// A damaged record is reported when read, naming the file.
	good := filepath.Join(dir, "good.db")
	s, err := store.Open(good)
	require.NoError(t, err)
	require.NoError(t, s.PutAlerts(context.Background(), []store.Alert{{Fingerprint: "a"}}, nil))
	require.NoError(t, s.Close())
	damage(t, good, "alerts", "b")
	s, err = store.Open(good)
	require.NoError(t, err)
	_, err = s.Alerts(context.Background())
	assert.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), good)
	require.NoError(t, s.Close())

	big := filepath.Join(dir, "big.db")
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(i * 7)
	}
	require.NoError(t, os.WriteFile(big, junk, 0o600))
	_, err = store.Open(big)
	assert.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), big)

	if os.Geteuid() != 0 { // root ignores permissions
		ro := filepath.Join(dir, "ro")
		require.NoError(t, os.Mkdir(ro, 0o500))
		_, err = store.Open(filepath.Join(ro, "state.db"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), filepath.Join(ro, "state.db"))
	}
	missingDir := filepath.Join(dir, "no", "such", "dir", "state.db")
	_, err = store.Open(missingDir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), missingDir)

	// Locked by another open.
	s, err = store.Open(good)
	require.NoError(t, err)
	defer s.Close()
	_, err = store.Open(good, store.WithLockTimeout(50*time.Millisecond))
	assert.ErrorIs(t, err, store.ErrLocked)
	assert.Contains(t, err.Error(), good)

	_, err = store.Open("")
	assert.ErrorIs(t, err, store.ErrInvalidArgument)
	_, err = store.Open(good, nil)
	assert.ErrorIs(t, err, store.ErrInvalidArgument)
	_, err = store.Open(good, store.WithMaxNotifications(0))
	assert.ErrorIs(t, err, store.ErrInvalidArgument)
}

// A bbolt file written by another program is refused, not adopted.
func TestForeignBoltFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "foreign.db")
	writeForeign(t, path)
	_, err := store.Open(path)
	assert.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), path)
}

// The history and maintenance contract, shared with the PostgreSQL store.
func TestHistoryContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
			s := store.NewMemory()
			return s, func() store.Store { return s }
		})
	})
	t.Run("bolt", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := store.Open(path)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s, func() store.Store {
				require.NoError(t, s.Close())
				s2, err := store.Open(path)
				require.NoError(t, err)
				t.Cleanup(func() { s2.Close() })
				return s2
			}
		})
	})
}

// History older than the retention is deleted as new history is written.
func TestHistoryRetention(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.WithHistoryRetention(time.Hour))
	require.NoError(t, err)
	defer s.Close()
	now := time.Now()
	require.NoError(t, s.PutMetricSnapshots(ctx, []store.MetricSnapshot{{Time: now.Add(-2 * time.Hour), Cluster: "c", Member: "m"},
		{Time: now.Add(-90 * time.Minute), Cluster: "c"}}))
	require.NoError(t, s.PutMetricSnapshots(ctx, []store.MetricSnapshot{{Time: now, Cluster: "c"}}))
	got, err := s.MetricSnapshots(ctx, store.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.True(t, got[0].Time.Equal(now))

	_, err = store.Open(filepath.Join(t.TempDir(), "x.db"), store.WithHistoryRetention(0))
	assert.ErrorIs(t, err, store.ErrInvalidArgument)

	m := store.NewMemory()
	var many []store.HealthCheck
	for i := range store.DefaultMemoryHistory + 5 {
		many = append(many, store.HealthCheck{Time: now.Add(time.Duration(i) * time.Second), Cluster: "c"})
	}
	require.NoError(t, m.PutHealthChecks(ctx, many))
	require.NoError(t, m.PutHealthChecks(ctx, []store.HealthCheck{{Time: now.Add(-25 * time.Hour), Cluster: "c"}}))
	hs, err := m.HealthChecks(ctx, store.HistoryQuery{Limit: 10 * store.DefaultMemoryHistory})
	require.NoError(t, err)
	require.Len(t, hs, store.DefaultMemoryHistory)
	assert.True(t, hs[0].Time.Equal(now.Add(5*time.Second)), "the oldest went first")
}
