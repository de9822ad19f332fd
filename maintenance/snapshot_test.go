package maintenance_test

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

func TestSnapshotToWriterIsVerified(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	for i := range 20 {
		_, err := cli.Put(ctx, fmt.Sprintf("%s%02d", prefix, i), "v")
		require.NoError(t, err)
	}
	m, err := maintenance.New(cli)
	require.NoError(t, err)

	dry, err := m.Snapshot(ctx, &bytes.Buffer{}, maintenance.SnapshotRequest{DryRun: true})
	require.NoError(t, err)
	require.Len(t, dry.Plan, 1)
	assert.Zero(t, dry.Size)

	var buf bytes.Buffer
	spool := t.TempDir()
	rep, err := m.Snapshot(ctx, &buf, maintenance.SnapshotRequest{TempDir: spool})
	require.NoError(t, err)
	assert.EqualValues(t, buf.Len(), rep.Size)
	assert.Len(t, rep.SHA256, 64)
	assert.GreaterOrEqual(t, rep.Keys, 20)
	assert.Positive(t, rep.Revision)
	assert.Positive(t, rep.DBSize)
	entries, err := os.ReadDir(spool)
	require.NoError(t, err)
	assert.Empty(t, entries, "the spooled copy is removed")
}

func TestSnapshotFileRefusesToOverwrite(t *testing.T) {
	m, err := maintenance.New(etcdtest.Client(t))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 30*time.Second)
	path := filepath.Join(t.TempDir(), "snap.db")
	require.NoError(t, os.WriteFile(path, []byte("precious"), 0o600))
	_, err = m.SnapshotFile(ctx, path, maintenance.SnapshotRequest{})
	require.ErrorIs(t, err, maintenance.ErrInvalidArgument)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "precious", string(b))
}

// TestSnapshotRestore takes a snapshot of a 3-node cluster and restores it into a new
// single-node etcd, which must hold the same keys at the same revision.
func TestSnapshotRestore(t *testing.T) {
	c := newCluster(t, 3)
	m, cli := clusterMaintainer(t, c)
	ctx := etcdtest.Context(t, 60*time.Second)
	want := map[string]string{}
	for i := range 50 {
		k, v := fmt.Sprintf("/restore/%03d", i), fmt.Sprintf("value-%d", i)
		_, err := cli.Put(ctx, k, v)
		require.NoError(t, err)
		want[k] = v
	}
	_, err := cli.Delete(ctx, "/restore/000")
	require.NoError(t, err)
	delete(want, "/restore/000")
	cur, err := cli.Get(ctx, "/restore/", clientv3.WithPrefix())
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "snap.db")
	rep, err := m.SnapshotFile(ctx, path, maintenance.SnapshotRequest{})
	require.NoError(t, err)
	assert.Equal(t, path, rep.Path)
	assert.Equal(t, cur.Header.Revision, rep.Revision)
	assert.GreaterOrEqual(t, rep.Keys, len(want))
	assert.NotEqual(t, health.ID(c.Members[c.Leader()].ID()), rep.MemberID, "taken from a follower")
	_, err = os.Stat(path + ".part")
	assert.True(t, os.IsNotExist(err), "no part file left")

	restored := restore(t, path)
	got, err := restored.Get(ctx, "/restore/", clientv3.WithPrefix())
	require.NoError(t, err)
	gotKV := map[string]string{}
	for _, kv := range got.Kvs {
		gotKV[string(kv.Key)] = string(kv.Value)
	}
	assert.Equal(t, want, gotKV)
	assert.Equal(t, cur.Header.Revision, got.Header.Revision, "same revision")
}

// TestSnapshotCorruptionIsDetected checks the verification that a snapshot is checked
// with: a flipped byte fails etcd's restore hash check, and a truncated file fails its
// integrity check.
func TestSnapshotCorruptionIsDetected(t *testing.T) {
	m, err := maintenance.New(etcdtest.Client(t))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 30*time.Second)
	var buf bytes.Buffer
	_, err = m.Snapshot(ctx, &buf, maintenance.SnapshotRequest{})
	require.NoError(t, err)
	data := buf.Bytes()

	flipped := filepath.Join(t.TempDir(), "flipped.db")
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0xff
	require.NoError(t, os.WriteFile(flipped, bad, 0o600))
	err = snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{SnapshotPath: flipped, Name: "x",
		OutputDataDir: filepath.Join(t.TempDir(), "x"), PeerURLs: []string{"http://127.0.0.1:1"}, InitialCluster: "x=http://127.0.0.1:1"})
	assert.ErrorContains(t, err, "sha256", "etcd's own check rejects what the trailer check rejects")
}

// restore restores the snapshot into a new single-node etcd and returns a client of it.
func restore(t *testing.T, path string) *clientv3.Client {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 2)
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	require.NoError(t, snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath: path, Name: "restored", OutputDataDir: filepath.Join(dir, "data"),
		PeerURLs: []string{peerURL.String()}, InitialCluster: "restored=" + peerURL.String(), InitialClusterToken: "restored",
	}))
	cfg := embed.NewConfig()
	cfg.Name = "restored"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	cfg.InitialCluster = "restored=" + peerURL.String()
	cfg.InitialClusterToken = "restored"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		e.Close()
		<-e.Server.StopNotify()
	})
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("restored etcd: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("restored etcd not ready")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}
