package store_test

import (
	"context"

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

// Both implementations pass the contract, shared with the PostgreSQL store.
func TestContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
			s := store.NewMemory()
			return s, func() store.Store { return s }
		}, storetest.HugeValues, storetest.RecordTimeBound)
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
		}, storetest.HugeValues, storetest.RecordTimeBound)
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

// History older than the retention is deleted whichever cluster the new history is
// of: a cluster no longer monitored (removed from the configuration) does not keep
// its history for ever. (bbolt holds every cluster to it once a minute; here sooner.)
func TestHistoryRetentionOfClustersNoLongerWritten(t *testing.T) {
	ctx := context.Background()
	const retention = time.Hour
	b, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.WithHistoryRetention(retention))
	require.NoError(t, err)
	defer b.Close()
	store.SetSweepEvery(b, 100*time.Millisecond)
	for name, s := range map[string]struct {
		store.Store
		retention time.Duration
	}{"bolt": {b, retention}, "memory": {store.NewMemory(), store.DefaultHistoryRetention}} {
		// Within the retention when written, older than it a moment later.
		aging := time.Now().Add(-s.retention + 100*time.Millisecond)
		require.NoError(t, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: aging, Cluster: "gone"}}), name)
		require.NoError(t, s.PutMetricSnapshots(ctx, []store.MetricSnapshot{{Time: aging, Cluster: "gone", Member: "m"}}), name)
		assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			now := time.Now()
			assert.NoError(ct, s.PutHealthChecks(ctx, []store.HealthCheck{{Time: now, Cluster: "live"}}))
			assert.NoError(ct, s.PutMetricSnapshots(ctx, []store.MetricSnapshot{{Time: now, Cluster: "live", Member: "m"}}))
			hs, err := s.HealthChecks(ctx, store.HistoryQuery{Cluster: "gone"})
			assert.NoError(ct, err)
			assert.Empty(ct, hs, "%s: health checks of a cluster no longer written", name)
			ms, err := s.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "gone"})
			assert.NoError(ct, err)
			assert.Empty(ct, ms, "%s: metric snapshots of a cluster no longer written", name)
		}, 5*time.Second, 50*time.Millisecond, name)
	}
}
