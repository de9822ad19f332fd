package maintcli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/maintcli"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// TestMain runs the tests against one in-process etcd and fails the run if any goroutine
// outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// run runs the command line against the shared node.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx := etcdtest.Context(t, 60*time.Second)
	var out, errOut bytes.Buffer
	full := append(args[:1:1], append([]string{"--endpoints=" + strings.Join(etcdtest.Endpoints(), ",")}, args[1:]...)...)
	code = maintcli.Run(ctx, full, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, maintcli.ExitUsage, maintcli.Run(context.Background(), nil, &out, &errOut))
	assert.Contains(t, errOut.String(), "Usage: etcd-monitor <command>")
	assert.Contains(t, errOut.String(), "-endpoints")
	assert.False(t, maintcli.IsCommand("serve"))
	errOut.Reset()
	assert.Equal(t, maintcli.ExitOK, maintcli.Run(context.Background(), []string{"defrag", "--help"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "--move-leader")
	assert.Contains(t, errOut.String(), "-move-leader", "the command's own flags are listed")
	assert.True(t, maintcli.IsCommand("move-leader"))

	for _, args := range [][]string{
		{"compact"},
		{"compact", "--keep-revisions=3", "--keep-newer-than=1h"},
		{"compact", "--keep-revisions=x"},
		{"snapshot", "load", "x"},
		{"snapshot", "save"},
		{"alarm", "silence"},
		{"member"},
		{"member", "remove"},
		{"member", "remove", "not-hex"},
		{"member", "frobnicate"},
		{"move-leader", "a", "b"},
		{"defrag", "extra"},
		{"defrag", "--members=zz"},
		{"member", "list", "--output=yaml"},
	} {
		code, _, stderr := run(t, args...)
		assert.Equal(t, maintcli.ExitUsage, code, "%v: %s", args, stderr)
		assert.NotEmpty(t, stderr, "%v", args)
	}
}

func TestMemberListTableAndJSON(t *testing.T) {
	code, out, stderr := run(t, "member", "list")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, "| ID ")
	assert.Contains(t, out, "| localetcd |")
	assert.Contains(t, out, "| started ")

	code, out, stderr = run(t, "member", "list", "--output=json")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	var ml maintenance.MemberList
	require.NoError(t, json.Unmarshal([]byte(out), &ml))
	require.Len(t, ml.Members, 1)
	assert.True(t, ml.Members[0].Leader)
	id := ml.Members[0].ID.Hex()

	// The last voting member is never removed, nor can leadership move anywhere.
	code, _, stderr = run(t, "member", "remove", id)
	assert.Equal(t, maintcli.ExitFailed, code)
	assert.Contains(t, stderr, "would cost quorum")
	code, _, stderr = run(t, "move-leader")
	assert.Equal(t, maintcli.ExitFailed, code)
	assert.Contains(t, stderr, "no follower")
	code, out, _ = run(t, "move-leader", id)
	assert.Equal(t, maintcli.ExitOK, code)
	assert.Contains(t, out, "leads already")

	code, out, stderr = run(t, "member", "add", "http://127.0.0.1:1", "--dry-run")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, "1. add-learner: http://127.0.0.1:1")
	code, out, _ = run(t, "member", "list")
	require.Equal(t, maintcli.ExitOK, code)
	assert.Equal(t, 5, strings.Count(out, "\n"), "a dry run adds nobody:\n%s", out)
}

func TestDefragCommand(t *testing.T) {
	code, out, stderr := run(t, "defrag")
	assert.Equal(t, maintcli.ExitFailed, code)
	assert.Contains(t, stderr, "AllowSingleMember")
	assert.Contains(t, out, "| pending ")
	assert.Contains(t, out, "ABORTED: maintenance: would cost quorum")

	code, out, stderr = run(t, "defrag", "--allow-single-member", "--dry-run")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, "dry run; the plan:\n  1. defragment localetcd")

	code, out, stderr = run(t, "defrag", "--allow-single-member")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, "| done ")
	assert.Contains(t, out, "defragmented 1 member(s)")
}

func TestCompactSnapshotAlarmCommands(t *testing.T) {
	cli := etcdtest.Client(t)
	for range 10 {
		_, err := cli.Put(etcdtest.Context(t, 10*time.Second), etcdtest.Prefix(t), "v")
		require.NoError(t, err)
	}
	code, out, stderr := run(t, "compact", "--keep-revisions=5", "--physical")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, "compacted to revision")

	path := filepath.Join(t.TempDir(), "snap.db")
	code, out, stderr = run(t, "snapshot", "save", path, "--output=json")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	var rep maintenance.SnapshotReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Len(t, rep.SHA256, 64)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, rep.Size, st.Size())

	code, _, stderr = run(t, "snapshot", "save", path)
	assert.Equal(t, maintcli.ExitUsage, code, "an existing file is never overwritten")
	assert.Contains(t, stderr, "exists")

	code, out, stderr = run(t, "alarm", "list")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, "no alarms")
	assert.Contains(t, out, "| localetcd |")
	code, out, stderr = run(t, "alarm", "disarm")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, "no NOSPACE alarm")
}

func TestUnreachableCluster(t *testing.T) {
	var out, errOut bytes.Buffer
	code := maintcli.Run(etcdtest.Context(t, 30*time.Second), []string{"member", "list", "--endpoints=127.0.0.1:1", "--dial-timeout=100ms"}, &out, &errOut)
	assert.Equal(t, maintcli.ExitFailed, code)
	assert.Contains(t, errOut.String(), "etcd-monitor member:")
}
