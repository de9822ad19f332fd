package txn_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/txn"
)

// TestFaultClusterCounter: 8 goroutines on separate clients, spread over the members of a
// 3-node cluster, each Update one counter 50 times with the default retry bound. No
// update is lost and none gives up. The context is a bound on a hang, not on speed
// (a loaded machine may take minutes); speed is measured by the benchmarks.
func TestFaultClusterCounter(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 5*time.Minute)
	const key, workers, each = "/counter", 8, 50
	var maxCalls atomic.Int64

	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		cli := c.Client(w % 3)
		wg.Go(func() {
			for range each {
				calls := int64(0)
				_, err := txn.Update(ctx, cli, key, func(old []byte) ([]byte, error) {
					calls++
					n := 0
					if old != nil {
						var err error
						if n, err = strconv.Atoi(string(old)); err != nil {
							return nil, err
						}
					}
					return []byte(strconv.Itoa(n + 1)), nil
				})
				for {
					m := maxCalls.Load()
					if calls <= m || maxCalls.CompareAndSwap(m, calls) {
						break
					}
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	t.Logf("most attempts for one update: %d", maxCalls.Load())
	for err := range errs {
		require.NoError(t, err)
	}
	resp, err := c.ClusterClient().Get(ctx, key)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, strconv.Itoa(workers*each), string(resp.Kvs[0].Value))
}
