package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lease"
)

// TestFaultCluster runs the lease's fault checks on one 3-node cluster.
func TestFaultCluster(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)

	t.Run("LeaderStopSurvives", func(t *testing.T) {
		ctx := etcdtest.Context(t, 60*time.Second)
		cli := c.ClusterClient()
		k, err := lease.New(ctx, cli, 3*time.Second)
		require.NoError(t, err)
		defer k.Close()
		id, lost := k.ID(), k.Lost()
		stopped := c.StopLeader()
		defer c.RestartMember(stopped)
		// Outlive the TTL twice after the election: only renewals through the new
		// leader can keep the lease.
		select {
		case <-lost:
			t.Fatalf("lease lost across the election: %v", k.Err())
		case <-time.After(6 * time.Second):
		}
		assert.Equal(t, id, k.ID())
		left, err := k.TTL(ctx)
		require.NoError(t, err)
		assert.Positive(t, left)
	})

	t.Run("RevokedElsewhereRegrants", func(t *testing.T) {
		ctx := etcdtest.Context(t, 60*time.Second)
		cli := c.ClusterClient()
		ids := make(chan clientv3.LeaseID, 1)
		k, err := lease.New(ctx, cli, 5*time.Second, lease.WithRegrant(func(_ context.Context, id clientv3.LeaseID) error {
			ids <- id
			return nil
		}))
		require.NoError(t, err)
		defer k.Close()
		first, lost := k.ID(), k.Lost()
		_, err = c.Client(c.Leader()).Revoke(ctx, first)
		require.NoError(t, err)
		// Found by the next renewal, at most a second away: three of them.
		select {
		case <-lost:
		case <-time.After(3 * time.Second):
			t.Fatal("Lost not closed within 3s of the revoke")
		}
		select {
		case id := <-ids:
			assert.NotEqual(t, first, id)
			assert.Equal(t, id, k.ID())
		case <-time.After(5 * time.Second):
			t.Fatal("hook not called")
		}
	})

	t.Run("SilentPastTTLIsLostThenRegranted", func(t *testing.T) {
		ctx := etcdtest.Context(t, 60*time.Second)
		i := (c.Leader() + 1) % 3
		cli := c.Client(i)
		ids := make(chan clientv3.LeaseID, 1)
		k, err := lease.New(ctx, cli, 2*time.Second, lease.WithRegrant(func(_ context.Context, id clientv3.LeaseID) error {
			ids <- id
			return nil
		}))
		require.NoError(t, err)
		defer k.Close()
		first, lost := k.ID(), k.Lost()
		ttl, err := k.TTL(ctx)
		require.NoError(t, err)
		c.Blackhole(i)
		select {
		case <-lost:
		case <-time.After(ttl + 2*time.Second):
			c.Unblackhole(i)
			t.Fatal("lease not reported lost after a TTL without renewals")
		}
		c.Unblackhole(i)
		select {
		case id := <-ids:
			assert.NotEqual(t, first, id)
		case <-time.After(15 * time.Second):
			t.Fatal("no new lease after the connection came back")
		}
		_, err = k.TTL(ctx) // etcd knows the new lease (0 is a 2s lease's last second)
		require.NoError(t, err)
	})

	t.Run("LostBeforeEtcdCanExpire", func(t *testing.T) {
		ctx := etcdtest.Context(t, 60*time.Second)
		// Cut off right after the grant: no renewal is ever acknowledged, so etcd may
		// expire the lease from grant send time + TTL on. Lost must close before then.
		i := (c.Leader() + 1) % 3
		cli := c.Client(i)
		const ttl = 2 * time.Second
		sent := time.Now()
		k, err := lease.New(ctx, cli, ttl)
		require.NoError(t, err)
		defer k.Close()
		c.Blackhole(i)
		defer c.Unblackhole(i)
		etcdtest.WaitSwallowed(t, cli) // else a renewal could be the read the bridge lets through
		// Checked when etcd could first expire the lease, not when this goroutine wakes
		// after Lost closed: a goroutine of the test scheduled late on a loaded machine
		// says nothing of when Lost closed, one that finds it still open does.
		expiry := time.NewTimer(time.Until(sent.Add(ttl)))
		defer expiry.Stop()
		select {
		case <-k.Lost():
			t.Logf("lost %v before etcd could expire the lease", time.Until(sent.Add(ttl)))
		case <-expiry.C:
			select {
			case <-k.Lost():
			default:
				t.Error("Lost still open when etcd could already have expired the lease")
			}
		}
		select {
		case <-k.Lost():
		case <-time.After(3 * ttl):
			t.Fatal("lease not reported lost while cut off")
		}
		<-k.Done()
		assert.ErrorIs(t, k.Err(), lease.ErrLost)
	})

	// Also with the shortest TTL, whose renewals have the least time to land (467ms for
	// 1s): the hedge must go out in time to land. Watched for 9 renewals (3s) only, half
	// of which go to i first: a 1s lease has little slack on a loaded machine.
	//
	// A stall of the whole process longer than that slack loses the lease whatever the
	// renewals do, and a loaded machine has them: a lease lost is tried again, on a
	// lease of its own, up to three times. Without the hedge every try loses its lease,
	// at its first renewal sent to i.
	for _, c1 := range []struct{ ttl, watch time.Duration }{{3 * time.Second, 7 * time.Second}, {time.Second, 3 * time.Second}} {
		ttl := c1.ttl
		t.Run("BlackholedEndpointSurvives/"+ttl.String(), func(t *testing.T) {
			const tries = 3
			for try := 1; ; try++ {
				err := blackholedEndpointTry(t, c, ttl, c1.watch)
				if err == nil {
					return
				}
				if try == tries {
					t.Fatalf("lease lost although another endpoint answers, in %d tries out of %d: %v", try, tries, err)
				}
				t.Logf("try %d: lease lost although another endpoint answers: %v", try, err)
			}
		})
	}
}

// blackholedEndpointTry grants a lease of ttl through etcd's leader i, blackholes i and
// gives the client another member j: it returns the lease's loss if it is lost within
// watch, and checks through j that etcd still has it otherwise.
func blackholedEndpointTry(t *testing.T, c *etcdtest.Cluster, ttl, watch time.Duration) error {
	t.Helper()
	ctx := etcdtest.Context(t, 60*time.Second)
	i, j := c.Leader(), (c.Leader()+1)%3
	cli := c.Client(i)
	k, err := lease.New(ctx, cli, ttl)
	require.NoError(t, err)
	defer k.Close()
	lost := k.Lost()
	// i swallows everything from now on; j is reachable too.
	c.Blackhole(i)
	defer c.Unblackhole(i)
	cli.SetEndpoints(c.Members[i].GRPCURL, c.Members[j].GRPCURL)
	select {
	case <-lost:
		<-k.Done() // without WithRegrant the Keeper ends with the loss, its cause in Err
		return k.Err()
	case <-time.After(watch):
	}
	// Ask etcd through j, which answers: the lease lives (-1: not found; 0 is under a
	// second left, as a 1s lease renewed every 333ms often has).
	resp, err := c.Client(j).TimeToLive(ctx, k.ID())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, resp.TTL, int64(0), "lease not found")
	return nil
}
