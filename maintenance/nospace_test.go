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

// TestRecoverNoSpace raises NOSPACE twice on a 1 MiB quota. When live keys fill the
// quota, compaction and defragmentation cannot free enough: the recovery refuses to
// disarm (ErrOverQuota) and the alarm stays. When old revisions fill it, the recovery
// compacts, defragments and disarms, and writes are back. A dry run changes nothing.
func TestRecoverNoSpace(t *testing.T) {
	const quota = 1 << 20
	c := newCluster(t, 3, etcdtest.WithQuota(quota))
	m, cli := clusterMaintainer(t, c)
	ctx := etcdtest.Context(t, 90*time.Second)
	value := strings.Repeat("v", 32<<10)
	fill := func(key func(i int) string) {
		t.Helper()
		// Until etcd refuses a write for space; a write that times out on a loaded
		// machine is not that, and the next one goes on filling.
		var err error
		for i := 0; i < 200 && !errors.Is(err, rpctypes.ErrNoSpace); i++ {
			_, err = cli.Put(ctx, key(i), value)
		}
		require.ErrorIs(t, err, rpctypes.ErrNoSpace)
	}

	// Live data: nothing to compact away. How close to the quota the defragmented file
	// ends up depends on bbolt's page use, so the limit is half the quota here: the
	// live keys alone are well over it.
	fill(func(i int) string { return fmt.Sprintf("/live/%03d", i) })
	rep, err := m.RecoverNoSpace(ctx, maintenance.NoSpaceRequest{KeepRevisions: 1, MaxUsage: 0.5})
	require.ErrorIs(t, err, maintenance.ErrOverQuota)
	require.NotNil(t, rep)
	assert.NotEmpty(t, rep.Alarms)
	require.NotNil(t, rep.Defragment, "the recovery got as far as defragmenting")
	require.NotNil(t, rep.Disarm)
	assert.Empty(t, rep.Disarm.Disarmed)
	_, err = cli.Put(ctx, "/after", "v")
	require.ErrorIs(t, err, rpctypes.ErrNoSpace, "the alarm stays")
	// QuotaBytes is the quota of members that do not report theirs: these members
	// report theirs, so a larger one does not let the alarm be disarmed over it.
	_, err = m.DisarmNoSpace(ctx, maintenance.DisarmRequest{MaxUsage: 0.5, QuotaBytes: 1 << 30})
	require.ErrorIs(t, err, maintenance.ErrOverQuota)
	_, err = cli.Put(ctx, "/after", "v")
	require.ErrorIs(t, err, rpctypes.ErrNoSpace, "the alarm stays")

	// Old revisions: delete the live keys (allowed under NOSPACE).
	_, err = cli.Delete(ctx, "/live/", clientv3.WithPrefix())
	require.NoError(t, err)

	dry, err := m.RecoverNoSpace(ctx, maintenance.NoSpaceRequest{KeepRevisions: 1, DryRun: true})
	require.NoError(t, err)
	var actions []string
	for _, s := range dry.Plan {
		actions = append(actions, s.Action)
	}
	assert.Equal(t, "compact", actions[0], "plan: %v", dry.Plan)
	assert.Equal(t, []string{"defragment", "defragment", "defragment"}, actions[1:4], "plan: %v", dry.Plan)
	assert.Equal(t, "disarm", actions[len(actions)-1], "plan: %v", dry.Plan)
	_, err = cli.Put(ctx, "/after", "v")
	require.ErrorIs(t, err, rpctypes.ErrNoSpace, "a dry run changes nothing")

	rep, err = m.RecoverNoSpace(ctx, maintenance.NoSpaceRequest{KeepRevisions: 1})
	require.NoError(t, err)
	assert.Positive(t, rep.Compact.CompactRevision)
	assert.Positive(t, rep.Defragment.Freed())
	assert.Len(t, rep.Disarm.Disarmed, len(rep.Alarms))
	_, err = cli.Put(ctx, "/after", "v")
	require.NoError(t, err, "writes are back")

	// No alarm: nothing to do.
	rep, err = m.RecoverNoSpace(ctx, maintenance.NoSpaceRequest{})
	require.NoError(t, err)
	assert.Empty(t, rep.Alarms)
	assert.Empty(t, rep.Plan)
	assert.Nil(t, rep.Compact)
}

func TestRecoverNoSpaceRejectsBadArguments(t *testing.T) {
	m, err := maintenance.New(etcdtest.Client(t))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 10*time.Second)
	for name, req := range map[string]maintenance.NoSpaceRequest{
		"negative keep": {KeepRevisions: -1},
		"max usage":     {MaxUsage: 1.1},
		"quota":         {QuotaBytes: -1},
	} {
		_, err := m.RecoverNoSpace(ctx, req)
		assert.ErrorIs(t, err, maintenance.ErrInvalidArgument, name)
	}
}
