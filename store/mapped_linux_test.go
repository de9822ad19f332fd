package store

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// mappedKB is the resident size of this process's mappings of the file at path.
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	require.NoError(t, err)
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			in = fields[len(fields)-1] == path
		case in && len(fields) == 3 && fields[0] == "Rss:":
			n, err := strconv.Atoi(fields[1])
			require.NoError(t, err)
			kb += n
		}
	}
	require.NoError(t, sc.Err())
	return kb
}

// The pages of the file that history writes map do not stay resident: the process maps
// a small part of a file its appends read all of.
func TestBoltHistoryPagesNotKeptMapped(t *testing.T) {
	b, path := openTemp(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Now().Add(-time.Hour)
	for i := range 3000 {
		data := make([]byte, 0, 3000)
		data = append(data, `{"v":"`...)
		for range 1500 {
			data = strconv.AppendInt(data, rng.Int64N(10), 10) // compresses to about half
		}
		data = append(data, `"}`...)
		require.NoError(t, b.PutMetricSnapshots(ctx, []MetricSnapshot{{Time: at.Add(time.Duration(i) * time.Second),
			Cluster: fmt.Sprint("c", i%3), Data: json.RawMessage(data)}}))
	}
	var size int64
	require.NoError(t, b.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }))
	mapped := mappedKB(t, path)
	t.Logf("%d KB of data, %d KB mapped", size>>10, mapped)
	require.Greater(t, size, int64(4<<20), "the file the appends read")
	assert.Less(t, mapped, 512, "KB left mapped by the writes")

	// What was written reads back whole.
	got, err := b.MetricSnapshots(ctx, HistoryQuery{Cluster: "c1", Limit: 5000})
	require.NoError(t, err)
	assert.Len(t, got, 1000)
	for _, s := range got {
		assert.True(t, json.Valid(s.Data))
	}
}
