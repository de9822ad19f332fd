package alert_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// On a real 3-member cluster checked every 500 ms, with the default rules and group_wait
// (2 s for the outage alerts): a rolling restart sends nothing; stopping 2 of 3 members
// sends exactly one notification, EtcdInsufficientMembers.
func TestClusterRollingRestartQuietQuorumLossPages(t *testing.T) {
	// Mostly waits on checks and restarts, in parallel with the package's other tests;
	// the only parallel test that starts a cluster (the etcd test framework allows one at
	// a time).
	t.Parallel()
	c := etcdtest.NewCluster(t, 3)
	eps := map[string]string{}
	for _, mem := range c.Members {
		eps[mem.Name] = mem.GRPCURL
	}
	// A timeout long enough for members that are up to answer on a busy machine under
	// -race (a stopped member costs a check the whole timeout: its client retries). A
	// member that is up and does not answer in time counts as down: with another member
	// stopped, that is a lost quorum, paged at once (its group_wait counts from the
	// check's start), and 2 s has been too short on a machine running cluster tests side
	// by side.
	ch, err := health.New(c.ClusterClient(), health.WithEndpoints(eps), health.WithTimeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	rec := &sink{}
	m, err := alert.New(alert.WithReceiver("pager", rec, true))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	check := func() *health.Report {
		<-tick.C // the health interval
		r, err := ch.Check(etcdtest.Context(t, 10*time.Second))
		require.NoError(t, err)
		_, err = m.EvaluateCluster(ctx, "test", r, nil)
		require.NoError(t, err)
		return r
	}
	allUp := func(r *health.Report) bool {
		for _, mm := range r.Members {
			if !mm.Reachable || mm.Status.Leader == 0 {
				return false
			}
		}
		return true
	}

	for i := range c.Members {
		c.StopMember(i)
		for range 2 { // down about 10 s: each check waits out the stopped member's timeout (5 s)
			check()
		}
		c.RestartMember(i)
		up := false
		for n := 0; n < 60 && !up; n++ {
			up = allUp(check())
		}
		require.True(t, up, "member %d back", i)
	}
	for range 6 { // longer than the outage group_wait
		check()
	}
	assert.Empty(t, rec.summary(), "a rolling restart notifies nobody")

	c.StopMember(0)
	c.StopMember(1)
	for n := 0; n < 60 && len(rec.summary()) == 0; n++ {
		check()
	}
	for range 2 { // past the group_wait of anything else the same checks raised (5 s a check)
		check()
	}
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing"}, rec.summary(), "one page, per-member alerts inhibited")
	c.RestartMember(0)
	c.RestartMember(1)
}
