package store

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// History records written before Data was kept apart (inline in the record) still
// read back with their Data, and new records keep theirs in the data bucket only.
func TestBoltHistoryDataLayouts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	b, err := Open(path)
	require.NoError(t, err)
	defer b.Close()
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
