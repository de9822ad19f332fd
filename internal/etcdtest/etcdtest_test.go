package etcdtest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestSharedNode(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "k"
	_, err := cli.Put(ctx, key, "v")
	require.NoError(t, err)
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	require.Equal(t, "v", string(resp.Kvs[0].Value))
}

func TestClusterSurvivesLeaderStop(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	cli := c.ClusterClient()
	ctx := etcdtest.Context(t, 30*time.Second)
	_, err := cli.Put(ctx, "a", "1")
	require.NoError(t, err)
	stopped := c.StopLeader()
	_, err = cli.Put(ctx, "a", "2")
	require.NoError(t, err)
	c.RestartMember(stopped)
	c.Leader()
	resp, err := c.Client(stopped).Get(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, "2", string(resp.Kvs[0].Value))
}

func TestBlackholeCutsOffClient(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	cli := c.Client(0)
	c.Blackhole(0)
	ctx := etcdtest.Context(t, 500*time.Millisecond)
	_, err := cli.Put(ctx, "a", "1")
	require.Error(t, err)
	c.Unblackhole(0)
	ctx = etcdtest.Context(t, 10*time.Second)
	_, err = cli.Put(ctx, "a", "1")
	require.NoError(t, err)
}
