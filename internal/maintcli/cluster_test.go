package maintcli_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/maintcli"
)

// TestCommandsOnACluster runs the commands against a 3-node cluster: a defragmentation
// that moves leadership away first, and a removal refused because it would cost quorum.
func TestCommandsOnACluster(t *testing.T) {
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Name+"="+m.GRPCURL)
	}
	// A settle timeout of several checks (each bounded by the checker's 2 s): one slow
	// answer on a loaded machine between two steps is waited out, not an abort.
	runc := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		full := append(args[:1:1], append([]string{"--endpoints=" + strings.Join(c.Endpoints(), ","),
			"--member-endpoints=" + strings.Join(eps, ","), "--settle-timeout=15s"}, args[1:]...)...)
		code := maintcli.Run(etcdtest.Context(t, 60*time.Second), full, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	lead := c.Leader()
	leaderName := c.Members[lead].Name

	code, out, stderr := runc("defrag", "--move-leader", "--dry-run")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, "3. move-leader")
	assert.Contains(t, out, "4. defragment "+leaderName)

	code, out, stderr = runc("defrag", "--move-leader")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Equal(t, 3, strings.Count(out, "| done "), out)
	assert.Contains(t, out, "leadership moved to")
	assert.NotEqual(t, lead, c.Leader())

	// One member down: removing a healthy one would leave 1 of 2.
	lead = c.Leader()
	dead, alive := (lead+1)%3, (lead+2)%3
	c.StopMember(dead)
	code, _, stderr = runc("member", "remove", health.ID(c.Members[alive].ID()).Hex())
	assert.Equal(t, maintcli.ExitFailed, code)
	assert.Contains(t, stderr, "would cost quorum")
	code, out, stderr = runc("member", "remove", health.ID(c.Members[dead].ID()).Hex(), "--dry-run")
	require.Equal(t, maintcli.ExitOK, code, stderr)
	assert.Contains(t, out, fmt.Sprintf("1. remove %s", c.Members[dead].Name))
}
