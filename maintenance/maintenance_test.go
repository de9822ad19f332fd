package maintenance_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// newCluster starts a cluster of size members whose followers wait half a second for
// their leader before they campaign: the tests name the leader and expect operations
// that need a healthy cluster to find one, and the framework's default 100 ms elects
// leaders unasked on a loaded machine.
func newCluster(t *testing.T, size int, opts ...etcdtest.ClusterOption) *etcdtest.Cluster {
	t.Helper()
	return etcdtest.NewCluster(t, size, append([]etcdtest.ClusterOption{etcdtest.WithElectionTicks(50)}, opts...)...)
}

// endpoints maps the cluster's member names to their gRPC bridges: the members of an
// in-process cluster advertise client URLs this process cannot use for gRPC.
func endpoints(c *etcdtest.Cluster) map[string]string {
	out := map[string]string{}
	for _, m := range c.Members {
		out[m.Name] = m.GRPCURL
	}
	return out
}

// clusterMaintainer returns a Maintainer of c with a settle timeout shorter than the
// default. A member that answers its status within 5 s is healthy, as a loaded machine
// under -race may take seconds; the settle timeout is three checks that wait that long,
// so that one slow answer between two steps does not abort an operation.
func clusterMaintainer(t *testing.T, c *etcdtest.Cluster, opts ...maintenance.Option) (*maintenance.Maintainer, *clientv3.Client) {
	t.Helper()
	cli := c.ClusterClient()
	ch, err := health.New(cli, health.WithEndpoints(endpoints(c)), health.WithTimeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	opts = append([]maintenance.Option{maintenance.WithChecker(ch), maintenance.WithSettleTimeout(15 * time.Second),
		maintenance.WithPollInterval(50 * time.Millisecond)}, opts...)
	m, err := maintenance.New(cli, opts...)
	require.NoError(t, err)
	return m, cli
}

// memberIndex maps member IDs to their index in c.Members.
func memberIndex(c *etcdtest.Cluster) map[health.ID]int {
	out := map[health.ID]int{}
	for i, m := range c.Members {
		out[health.ID(m.ID())] = i
	}
	return out
}

func TestNewRejectsBadArguments(t *testing.T) {
	cli := etcdtest.Client(t)
	cases := map[string][]maintenance.Option{
		"nil option":   {nil},
		"nil logger":   {maintenance.WithLogger(nil)},
		"zero poll":    {maintenance.WithPollInterval(0)},
		"zero settle":  {maintenance.WithSettleTimeout(-time.Second)},
		"bad prefix":   {maintenance.WithMarkPrefix("/no-slash")},
		"empty prefix": {maintenance.WithMarkPrefix("")},
	}
	for name, opts := range cases {
		_, err := maintenance.New(cli, opts...)
		assert.ErrorIs(t, err, maintenance.ErrInvalidArgument, name)
	}
	_, err := maintenance.New(nil)
	assert.ErrorIs(t, err, maintenance.ErrInvalidArgument)

	m, err := maintenance.New(cli)
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 10*time.Second)
	bad := map[string]func() error{
		"member timeout": func() error {
			_, err := m.Defragment(ctx, maintenance.DefragmentRequest{MemberTimeout: -1})
			return err
		},
		"unknown member": func() error {
			_, err := m.Defragment(ctx, maintenance.DefragmentRequest{Members: []health.ID{42}})
			return err
		},
		"compact none": func() error { _, err := m.Compact(ctx, maintenance.CompactRequest{}); return err },
		"compact both": func() error {
			_, err := m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: 1, KeepNewerThan: time.Hour})
			return err
		},
		"compact negative": func() error { _, err := m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: -1}); return err },
		"nil writer":       func() error { _, err := m.Snapshot(ctx, nil, maintenance.SnapshotRequest{}); return err },
		"empty path":       func() error { _, err := m.SnapshotFile(ctx, "", maintenance.SnapshotRequest{}); return err },
		"max usage":        func() error { _, err := m.DisarmNoSpace(ctx, maintenance.DisarmRequest{MaxUsage: 1.5}); return err },
		"no peer URLs":     func() error { _, err := m.AddLearner(ctx, maintenance.AddRequest{}); return err },
		"bad peer URL": func() error {
			_, err := m.AddLearner(ctx, maintenance.AddRequest{PeerURLs: []string{"localhost:2380"}})
			return err
		},
		"promote no ID": func() error { _, err := m.Promote(ctx, maintenance.PromoteRequest{}); return err },
		"remove no ID":  func() error { _, err := m.Remove(ctx, maintenance.RemoveRequest{}); return err },
	}
	for name, fn := range bad {
		assert.ErrorIs(t, fn(), maintenance.ErrInvalidArgument, name)
	}
}

func TestSingleMemberDefragmentNeedsConsent(t *testing.T) {
	m, err := maintenance.New(etcdtest.Client(t))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 30*time.Second)
	rep, err := m.Defragment(ctx, maintenance.DefragmentRequest{})
	require.ErrorIs(t, err, maintenance.ErrQuorum)
	require.NotNil(t, rep)
	assert.Len(t, rep.Members, 1)
	assert.Equal(t, maintenance.StatePending, rep.Members[0].State)
	assert.True(t, rep.Aborted, "a refusal says so in the report")
	assert.Contains(t, rep.Reason, "AllowSingleMember")

	rep, err = m.Defragment(ctx, maintenance.DefragmentRequest{AllowSingleMember: true})
	require.NoError(t, err)
	require.Len(t, rep.Members, 1)
	assert.Equal(t, maintenance.StateDone, rep.Members[0].State)
	assert.True(t, rep.Members[0].WasLeader)
	assert.Positive(t, rep.Members[0].DBSizeAfter)
}

func TestOneDefragmentationAtATime(t *testing.T) {
	m, err := maintenance.New(etcdtest.Client(t))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 30*time.Second)
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := m.Defragment(ctx, maintenance.DefragmentRequest{AllowSingleMember: true, Progress: func(maintenance.MemberDefrag) {
			close(inside)
			<-release
		}})
		done <- err
	}()
	<-inside
	_, err = m.Defragment(ctx, maintenance.DefragmentRequest{AllowSingleMember: true})
	assert.ErrorIs(t, err, maintenance.ErrBusy)
	_, err = m.Defragment(ctx, maintenance.DefragmentRequest{AllowSingleMember: true, DryRun: true})
	assert.NoError(t, err, "a dry run changes nothing and may run alongside")
	close(release)
	require.NoError(t, <-done)
	_, err = m.Defragment(ctx, maintenance.DefragmentRequest{AllowSingleMember: true})
	assert.NoError(t, err, "free again")
}

func TestCompactKeepRevisionsAndMarks(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t)
	m, err := maintenance.New(cli, maintenance.WithMarkPrefix(prefix+"marks/"))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 30*time.Second)

	// No mark yet: a compaction by age cannot know where to cut.
	_, err = m.Compact(ctx, maintenance.CompactRequest{KeepNewerThan: time.Nanosecond})
	require.ErrorIs(t, err, maintenance.ErrNoMark)

	first, err := m.Mark(ctx)
	require.NoError(t, err)
	for i := range 5 {
		_, err := cli.Put(ctx, prefix+"k", string(rune('a'+i)))
		require.NoError(t, err)
	}
	second, err := m.Mark(ctx)
	require.NoError(t, err)
	require.Greater(t, second.Revision, first.Revision)
	marks, err := m.Marks(ctx)
	require.NoError(t, err)
	assert.Equal(t, []maintenance.RevisionMark{first, second}, marks)

	// A dry run changes nothing.
	dry, err := m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: 3, DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, dry.Revision-2, dry.CompactRevision)
	require.Len(t, dry.Plan, 1)
	_, err = cli.Get(ctx, prefix+"k", clientv3.WithRev(dry.CompactRevision-1))
	require.NoError(t, err, "the dry run compacted")

	// By age: everything older than the first mark... the newest mark at least 0s old
	// is the second.
	rep, err := m.Compact(ctx, maintenance.CompactRequest{KeepNewerThan: time.Nanosecond, Physical: true})
	require.NoError(t, err)
	assert.Equal(t, second.Revision, rep.CompactRevision)
	_, err = cli.Get(ctx, prefix+"k", clientv3.WithRev(second.Revision-1))
	require.Error(t, err, "history before the mark is gone")
	marks, err = m.Marks(ctx)
	require.NoError(t, err)
	assert.Equal(t, []maintenance.RevisionMark{second}, marks, "marks before the compaction are pruned")

	// Compacting behind the compacted revision is not an error.
	rep, err = m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: rep.Revision + 100})
	require.NoError(t, err)
	assert.Zero(t, rep.CompactRevision)
	cur, err := cli.Get(ctx, prefix+"k")
	require.NoError(t, err)
	rep, err = m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: cur.Header.Revision - second.Revision + 2})
	require.NoError(t, err)
	assert.True(t, rep.AlreadyCompacted, "%+v", rep)

	rep, err = m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: 1})
	require.NoError(t, err)
	assert.Equal(t, rep.Revision, rep.CompactRevision)
	assert.False(t, rep.AlreadyCompacted)
}

func TestAlarmsAndMembersOnOneNode(t *testing.T) {
	m, err := maintenance.New(etcdtest.Client(t))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 10*time.Second)
	ar, err := m.Alarms(ctx)
	require.NoError(t, err)
	assert.Empty(t, ar.Alarms)
	require.Len(t, ar.Usage, 1)
	assert.Positive(t, ar.Usage[0].Quota, "etcd reports its quota")
	assert.Positive(t, ar.Usage[0].Ratio)

	dis, err := m.DisarmNoSpace(ctx, maintenance.DisarmRequest{})
	require.NoError(t, err)
	assert.Empty(t, dis.Disarmed, "no alarm, nothing to do")

	ml, err := m.Members(ctx)
	require.NoError(t, err)
	require.Len(t, ml.Members, 1)
	assert.True(t, ml.Members[0].Leader)
	assert.True(t, ml.Members[0].Reachable)

	rm, err := m.Remove(ctx, maintenance.RemoveRequest{ID: ml.Members[0].ID, DryRun: true})
	require.ErrorIs(t, err, maintenance.ErrQuorum, "the last voting member is never removed")
	assert.NotNil(t, rm)

	_, err = m.MoveLeader(ctx, maintenance.MoveLeaderRequest{})
	assert.ErrorIs(t, err, maintenance.ErrUnhealthy, "no follower to move to")
	mv, err := m.MoveLeader(ctx, maintenance.MoveLeaderRequest{To: ml.Members[0].ID})
	require.NoError(t, err)
	assert.True(t, mv.AlreadyLeader)
}

func TestCancelledContext(t *testing.T) {
	m, err := maintenance.New(etcdtest.Client(t))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, op := range map[string]func() error{
		"defragment": func() error {
			_, err := m.Defragment(ctx, maintenance.DefragmentRequest{AllowSingleMember: true})
			return err
		},
		"compact":  func() error { _, err := m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: 1}); return err },
		"snapshot": func() error { _, err := m.Snapshot(ctx, io.Discard, maintenance.SnapshotRequest{}); return err },
		"promote": func() error {
			_, err := m.Promote(ctx, maintenance.PromoteRequest{ID: 1, Timeout: time.Second})
			return err
		},
	} {
		assert.ErrorIs(t, op(), context.Canceled, name)
	}
}
