package store

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// History records written before Data was kept apart (inline in the record) still
// read back with their Data, and new records keep theirs in the data bucket only.
func TestBoltHistoryDataLayouts(t *testing.T) {
	b, _ := openTemp(t)
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	old := sample{Time: at, Cluster: "c", Healthy: true, Samples: 1, Data: json.RawMessage(`{"old":true}`)}
	require.NoError(t, b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.Bucket(bucketHealth).CreateBucketIfNotExists([]byte("c"))
		if err != nil {
			return err
		}
		return put(bk, sampleKey(old.Time, ""), old)
	}))
	require.NoError(t, b.PutHealthChecks(ctx, []HealthCheck{{Time: at.Add(time.Second), Cluster: "c", Healthy: true, Data: json.RawMessage(`{"new":true}`)}}))

	got, err := b.HealthChecks(ctx, HistoryQuery{Cluster: "c"})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.JSONEq(t, `{"old":true}`, string(got[0].Data))
	assert.JSONEq(t, `{"new":true}`, string(got[1].Data))
	steps, err := b.HealthChecks(ctx, HistoryQuery{Cluster: "c", Step: time.Hour})
	require.NoError(t, err)
	require.Len(t, steps, 1)
	assert.JSONEq(t, `{"new":true}`, string(steps[0].Data), "the step's last record's")

	require.NoError(t, b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketHealth).Bucket([]byte("c")).Get(sampleKey(at.Add(time.Second), ""))
		assert.NotContains(t, string(v), "new", "the record itself holds no Data")
		return nil
	}))
	// Replaced by a record without Data: none left.
	require.NoError(t, b.PutHealthChecks(ctx, []HealthCheck{{Time: at.Add(time.Second), Cluster: "c", Healthy: true}}))
	got, err = b.HealthChecks(ctx, HistoryQuery{Cluster: "c"})
	require.NoError(t, err)
	assert.Nil(t, got[1].Data)
}

// A history record's Data is stored deflated when that is smaller, and reads back
// byte for byte; Data stored raw (small, or written before) reads as it is, and Data
// that does not inflate is a corrupt store, not a panic.
func TestBoltHistoryDataPacked(t *testing.T) {
	b, _ := openTemp(t)
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	big := json.RawMessage(`{"members":[` + strings.Repeat(`{"name":"m","db":{"size":123456789,"inUse":98765432}},`, 200) + `{}]}`)
	small := json.RawMessage(`{"small":true}`)
	require.NoError(t, b.PutMetricSnapshots(ctx, []MetricSnapshot{
		{Time: at, Cluster: "c", Data: big},
		{Time: at.Add(time.Second), Cluster: "c", Data: small},
	}))
	// A raw value as an earlier version wrote it.
	raw := json.RawMessage(`{"raw":"` + strings.Repeat("x", 2*packMin) + `"}`)
	require.NoError(t, b.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx.Bucket(bucketMetrics).Bucket([]byte("c")), sampleKey(at.Add(2*time.Second), ""), sample{Time: at.Add(2 * time.Second), Cluster: "c", Samples: 1}); err != nil {
			return err
		}
		return tx.Bucket(bucketMetricsData).Bucket([]byte("c")).Put(sampleKey(at.Add(2*time.Second), ""), raw)
	}))

	require.NoError(t, b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMetricsData).Bucket([]byte("c")).Get(sampleKey(at, ""))
		assert.Equal(t, byte(packedData), v[0])
		assert.Less(t, len(v), len(big)/5, "deflated")
		assert.Equal(t, []byte(small), tx.Bucket(bucketMetricsData).Bucket([]byte("c")).Get(sampleKey(at.Add(time.Second), "")), "small data raw")
		return nil
	}))
	got, err := b.MetricSnapshots(ctx, HistoryQuery{Cluster: "c"})
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []byte(big), []byte(got[0].Data))
	assert.Equal(t, []byte(small), []byte(got[1].Data))
	assert.Equal(t, []byte(raw), []byte(got[2].Data))

	// Corrupt packed data.
	require.NoError(t, b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMetricsData).Bucket([]byte("c")).Put(sampleKey(at, ""), []byte{packedData, 0xff, 0xfe, 0x00})
	}))
	_, err = b.MetricSnapshots(ctx, HistoryQuery{Cluster: "c"})
	assert.ErrorIs(t, err, ErrCorrupt)
}

// openTemp opens a Bolt store in a new file, closed when the test ends.
func openTemp(t *testing.T) (*Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	b, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b, path
}
