package localetcd

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCloseStopsAndRemovesData: a node serves, Close stops it even with a client still
// connected and a watch open, removes its data, and a second Close is a no-op.
func TestCloseStopsAndRemovesData(t *testing.T) {
	n, err := Start()
	require.NoError(t, err)
	dir := n.dir
	cli, err := clientv3.New(clientv3.Config{Endpoints: n.Endpoints(), DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, "k", "v")
	require.NoError(t, err)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wch := cli.Watch(wctx, "k")

	require.NoError(t, n.Close())
	assert.NoDirExists(t, dir)
	assert.NoError(t, n.Close(), "second Close")
	for range wch { // the watch ends with the server
	}
}

func TestStartRefusesBadOptions(t *testing.T) {
	_, err := Start(WithStartTimeout(0))
	assert.ErrorContains(t, err, "start timeout")
	_, err = Start(WithQuotaBackendBytes(-1))
	assert.ErrorContains(t, err, "quota")
}
