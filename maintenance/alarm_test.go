package maintenance_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// TestNoSpaceRecovery fills a small quota until etcd raises NOSPACE, shows that disarming
// is refused while the space is still used, and that compact + defragment + disarm
// brings writes back.
func TestNoSpaceRecovery(t *testing.T) {
	const quota = 1 << 20
	c := newCluster(t, 3, etcdtest.WithQuota(quota))
	m, cli := clusterMaintainer(t, c)
	ctx := etcdtest.Context(t, 60*time.Second)

	value := strings.Repeat("v", 32<<10)
	// Until etcd refuses a write for space; a write that times out on a loaded machine is
	// not that, and the next one goes on filling.
	var err error
	for i := 0; i < 100 && !errors.Is(err, rpctypes.ErrNoSpace); i++ {
		_, err = cli.Put(ctx, fmt.Sprintf("/fill/%03d", i), value)
	}
	require.ErrorIs(t, err, rpctypes.ErrNoSpace)
	ar, err := m.Alarms(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, ar.Alarms)
	assert.Equal(t, "NOSPACE", ar.Alarms[0].Type)

	// Disarming now would only raise the alarm again.
	_, err = m.DisarmNoSpace(ctx, maintenance.DisarmRequest{})
	require.ErrorIs(t, err, maintenance.ErrOverQuota)
	assert.Contains(t, err.Error(), "compact, then defragment")

	// Free the space: delete, compact (physically), defragment.
	_, err = cli.Delete(ctx, "/fill/", clientv3.WithPrefix())
	require.NoError(t, err)
	_, err = m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: 1, Physical: true})
	require.NoError(t, err)
	_, err = m.DisarmNoSpace(ctx, maintenance.DisarmRequest{})
	require.ErrorIs(t, err, maintenance.ErrOverQuota, "compaction alone does not shrink the file")

	dr, err := m.Defragment(ctx, maintenance.DefragmentRequest{})
	require.NoError(t, err, "NOSPACE does not block a defragmentation")
	assert.Positive(t, dr.Freed())

	dry, err := m.DisarmNoSpace(ctx, maintenance.DisarmRequest{DryRun: true})
	require.NoError(t, err)
	assert.NotEmpty(t, dry.Disarmed)
	_, err = cli.Put(ctx, "/after", "v")
	require.ErrorIs(t, err, rpctypes.ErrNoSpace, "a dry run disarms nothing")

	dis, err := m.DisarmNoSpace(ctx, maintenance.DisarmRequest{})
	require.NoError(t, err)
	assert.Equal(t, dry.Disarmed, dis.Disarmed)
	_, err = cli.Put(ctx, "/after", "v")
	require.NoError(t, err, "writes are back")
	ar, err = m.Alarms(ctx)
	require.NoError(t, err)
	assert.Empty(t, ar.Alarms)
}
