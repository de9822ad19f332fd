package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// endpoints maps the cluster's member names to their gRPC bridges: the members of an
// in-process cluster advertise HTTP-only client URLs.
func endpoints(c *etcdtest.Cluster) map[string]string {
	out := map[string]string{}
	for _, m := range c.Members {
		out[m.Name] = m.GRPCURL
	}
	return out
}

func newChecker(t *testing.T, c *etcdtest.Cluster, opts ...health.Option) *health.Checker {
	t.Helper()
	opts = append([]health.Option{health.WithEndpoints(endpoints(c)), health.WithTimeout(time.Second)}, opts...)
	ch, err := health.New(c.ClusterClient(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	return ch
}

func check(t *testing.T, ch *health.Checker) *health.Report {
	t.Helper()
	r, err := ch.Check(etcdtest.Context(t, 10*time.Second))
	require.NoError(t, err)
	return r
}

func memberID(c *etcdtest.Cluster, i int) health.ID { return health.ID(c.Members[i].Server.MemberID()) }

func partitioned(r *health.Report, id health.ID) (health.PartitionedMember, bool) {
	for _, p := range r.Partition.Members {
		if p.ID == id {
			return p, true
		}
	}
	return health.PartitionedMember{}, false
}

// Guarantees 1 and 2 on one cluster: a healthy cluster; the leader stops, a new leader
// appears and the change is in the history; that member shows down with quorum held;
// a second member stops and quorum is lost.
func TestClusterStopLeaderThenMembers(t *testing.T) {
	// Elections only when the test makes them: the leader history is counted, and the
	// framework's default 100 ms election timeout elects leaders unasked on a loaded machine.
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	// The first report of a fresh checker once the cluster is steady: on a loaded machine
	// an election just after the start is normal ("leader changed" from /readyz).
	var ch *health.Checker
	var r *health.Report
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		fresh, err := health.New(c.ClusterClient(), health.WithEndpoints(endpoints(c)), health.WithTimeout(time.Second))
		if !assert.NoError(ct, err) {
			return
		}
		got, err := fresh.Check(etcdtest.Context(t, 10*time.Second))
		if !assert.NoError(ct, err) {
			return
		}
		for _, m := range got.Members {
			assert.True(ct, m.Reachable && m.Livez.OK && m.Readyz.OK, "member %s: %v, readyz %+v", m.Name, m.Err, m.Readyz)
		}
		assert.True(ct, got.Leader.Agreed, "leader agreed")
		ch, r = fresh, got
	}, 30*time.Second, 100*time.Millisecond)
	require.Len(t, r.Members, 3)
	for _, m := range r.Members {
		assert.True(t, m.Reachable, "member %s: %v", m.Name, m.Err)
		assert.NotEmpty(t, m.Version)
		assert.NotZero(t, m.RaftTerm)
		assert.NotZero(t, m.RaftIndex)
		assert.NotZero(t, m.Revision)
		assert.NotZero(t, m.DBSize)
		assert.Positive(t, m.Latency)
		assert.True(t, m.Livez.Served && m.Livez.OK, "livez of %s: %+v", m.Name, m.Livez)
		assert.True(t, m.Readyz.Served && m.Readyz.OK, "readyz of %s: %+v", m.Name, m.Readyz)
	}
	assert.Equal(t, health.Quorum{Size: 2, Voters: 3, Healthy: 3, HasQuorum: true}, r.Quorum)
	oldLeader := memberID(c, c.Leader())
	assert.Equal(t, oldLeader, r.Leader.ID)
	assert.True(t, r.Leader.Agreed)
	assert.False(t, r.SplitBrain.Detected)
	assert.False(t, r.Partition.Detected)
	assert.True(t, r.Healthy)
	require.Len(t, r.LeaderHistory, 1)
	assert.Equal(t, health.LeaderChange{Time: r.Time, From: 0, To: oldLeader, Term: r.Leader.Term}, r.LeaderHistory[0])

	// Guarantee 2: stop the leader.
	stopped := c.StopLeader()
	require.Equal(t, oldLeader, memberID(c, stopped))
	// A check during the election may find a survivor not ready yet: wait for one after it.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		got, err := ch.Check(etcdtest.Context(t, 10*time.Second))
		if !assert.NoError(ct, err) {
			return
		}
		r = got
		assert.NotZero(ct, r.Leader.ID)
		assert.NotEqual(ct, oldLeader, r.Leader.ID)
		assert.True(ct, r.Leader.Agreed, "leader agreed")
		assert.True(ct, r.Quorum.HasQuorum, "quorum: %+v", r.Quorum)
	}, 15*time.Second, 50*time.Millisecond)
	newLeader := r.Leader.ID
	hist := ch.History()
	require.Len(t, hist, 2)
	assert.Equal(t, oldLeader, hist[1].From)
	assert.Equal(t, newLeader, hist[1].To)
	assert.Greater(t, hist[1].Term, hist[0].Term)
	assert.Equal(t, hist, r.LeaderHistory)

	// Guarantee 1, first half: the stopped member is down, quorum holds.
	down, ok := r.Member(oldLeader)
	require.True(t, ok)
	assert.False(t, down.Reachable)
	assert.Error(t, down.Err)
	assert.NotEmpty(t, down.Error)
	assert.False(t, down.Livez.OK)
	assert.Equal(t, health.Quorum{Size: 2, Voters: 3, Healthy: 2, HasQuorum: true}, r.Quorum)
	p, ok := partitioned(r, oldLeader)
	require.True(t, ok)
	assert.Equal(t, health.ReasonUnreachable, p.Reason)
	assert.False(t, r.Healthy)

	// Guarantee 1, second half: stop a second member, quorum is lost.
	var second int
	for i := range c.Members {
		if i != stopped {
			second = i
			break
		}
	}
	c.StopMember(second)
	require.Eventually(t, func() bool {
		got, err := ch.Check(etcdtest.Context(t, 10*time.Second))
		if err != nil {
			return false
		}
		r = got
		return !r.Quorum.HasQuorum
	}, 15*time.Second, 50*time.Millisecond)
	assert.Equal(t, 2, r.Quorum.Size)
	assert.Less(t, r.Quorum.Healthy, 2)
	assert.Len(t, r.Members, 3, "membership is still known")
}

// Guarantee 3 and 5 on one cluster: a member cut off from its peers is flagged as
// partitioned (and the flag clears when healed); split brain is seen through the status
// source.
func TestClusterPartitionAndSplitBrain(t *testing.T) {
	// The leader and follower picked here must keep their roles through the subtests.
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	cli := c.ClusterClient()
	lead := c.Leader()
	follower := (lead + 1) % 3
	fid := memberID(c, follower)

	t.Run("SplitBrain", func(t *testing.T) {
		// Two members claim different leaders in one term: the real leader and the
		// follower itself. No real cluster can be driven into this.
		src := &rewrite{StatusSource: health.NewEtcdSource(cli), fn: func(m health.Member, st *health.Status) {
			if m.ID == fid {
				st.Leader = fid
			}
		}}
		ch, err := health.New(cli, health.WithSource(src), health.WithEndpoints(endpoints(c)))
		require.NoError(t, err)
		t.Cleanup(func() { ch.Close() })
		r := check(t, ch)
		require.Equal(t, 3, reachable(r))
		require.True(t, r.SplitBrain.Detected, "%+v", r.SplitBrain)
		assert.Equal(t, r.Members[0].RaftTerm, r.SplitBrain.Term)
		assert.Len(t, r.SplitBrain.Leaders, 2)
		assert.Equal(t, []health.ID{fid}, r.SplitBrain.Leaders[fid])
		assert.Len(t, r.SplitBrain.Leaders[memberID(c, lead)], 2)
		assert.Contains(t, r.SplitBrain.Reason, "different leaders")
		assert.False(t, r.Leader.Agreed)
		assert.False(t, r.Healthy)

		// Different leaders in different terms is a leader change in flight, not split brain.
		src.fn = func(m health.Member, st *health.Status) {
			if m.ID == fid {
				st.Leader, st.RaftTerm = fid, st.RaftTerm+1
			}
		}
		r = check(t, ch)
		assert.False(t, r.SplitBrain.Detected, "%+v", r.SplitBrain)

		// Members of different clusters.
		src.fn = func(m health.Member, st *health.Status) {
			if m.ID == fid {
				st.ClusterID++
			}
		}
		r = check(t, ch)
		assert.True(t, r.SplitBrain.Detected)
		assert.Len(t, r.SplitBrain.ClusterIDs, 2)
		assert.Contains(t, r.SplitBrain.Reason, "cluster IDs")

		// And the unmodified source sees a sound cluster.
		src.fn = func(health.Member, *health.Status) {}
		r = check(t, ch)
		assert.False(t, r.SplitBrain.Detected)
		assert.True(t, r.Healthy, "%+v", r)
	})

	t.Run("Partition", func(t *testing.T) {
		ch := newChecker(t, c)
		// Steady first: on a loaded machine a fresh checker may time out on a member.
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			got, err := ch.Check(etcdtest.Context(t, 10*time.Second))
			if assert.NoError(ct, err) {
				assert.False(ct, got.Partition.Detected, "%+v", got.Partition)
			}
		}, 30*time.Second, 100*time.Millisecond)
		c.Partition(follower)
		var r *health.Report
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			got, err := ch.Check(etcdtest.Context(t, 10*time.Second))
			if !assert.NoError(ct, err) {
				return
			}
			r = got
			_, ok := partitioned(r, fid)
			assert.True(ct, ok, "the follower is seen partitioned")
		}, 15*time.Second, 50*time.Millisecond)
		p, _ := partitioned(r, fid)
		assert.Contains(t, []string{health.ReasonNoLeader, health.ReasonRaftLag}, p.Reason)
		assert.True(t, r.Partition.Detected)
		assert.Len(t, r.Partition.Members, 1, "only the cut-off member: %+v", r.Partition.Members)
		m, _ := r.Member(fid)
		assert.True(t, m.Reachable, "clients still reach it")
		assert.True(t, r.Quorum.HasQuorum)

		c.Heal(follower)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			got, err := ch.Check(etcdtest.Context(t, 10*time.Second))
			if assert.NoError(ct, err) {
				assert.False(ct, got.Partition.Detected, "healed")
			}
		}, 15*time.Second, 50*time.Millisecond)
	})

	t.Run("RaftLag", func(t *testing.T) {
		// A lag threshold of one entry and a member whose view trails by ten.
		src := &rewrite{StatusSource: health.NewEtcdSource(cli), fn: func(m health.Member, st *health.Status) {
			if m.ID == fid {
				st.RaftIndex -= 10
			}
		}}
		ch, err := health.New(cli, health.WithSource(src), health.WithEndpoints(endpoints(c)), health.WithLagThreshold(1))
		require.NoError(t, err)
		t.Cleanup(func() { ch.Close() })
		r := check(t, ch)
		_, ok := partitioned(r, fid)
		require.False(t, ok, "one check has no apply rate to judge a lag by: %+v", r.Partition)
		assert.Zero(t, r.ApplyRate)
		r = check(t, ch)
		p, ok := partitioned(r, fid)
		require.True(t, ok, "%+v", r.Partition)
		assert.Equal(t, health.ReasonRaftLag, p.Reason)
		assert.Greater(t, p.Lag, uint64(1), "over the threshold")
		assert.LessOrEqual(t, p.Lag, uint64(10), "what the apply rate does not explain of the ten entries")
	})
}

func reachable(r *health.Report) int {
	n := 0
	for _, m := range r.Members {
		if m.Reachable {
			n++
		}
	}
	return n
}

// rewrite is a StatusSource that lets a test alter what a real cluster reports.
type rewrite struct {
	health.StatusSource
	fn func(health.Member, *health.Status)
}

func (s *rewrite) Status(ctx context.Context, m health.Member) (health.Status, error) {
	st, err := s.StatusSource.Status(ctx, m)
	if err == nil {
		s.fn(m, &st)
	}
	return st, err
}

// extra is a StatusSource that adds members a real cluster does not have.
type extra struct {
	health.StatusSource
	members []health.Member
}

func (s extra) Members(ctx context.Context) ([]health.Member, error) {
	ms, err := s.StatusSource.Members(ctx)
	return append(ms, s.members...), err
}

// Bad input: a member that times out, one that refuses TLS and one that answers garbage
// each carry their error; the rest of the report is complete.
func TestClusterFaultBadMembers(t *testing.T) {
	// The leader found here is asserted below: no election the test did not make.
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	lead := c.Leader()
	slow := (lead + 1) % 3
	// The membership and alarms are read through the leader's bridge: a client of every
	// member could send some of them into the blackhole, and the first check has no
	// earlier membership to fall back on.
	cli := c.Client(lead)

	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	junk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("this is not gRPC\n"))
	}))
	t.Cleanup(junk.Close)
	src := extra{StatusSource: health.NewEtcdSource(cli), members: []health.Member{
		{ID: 0xbad1, Name: "tls", ClientURLs: []string{tlsSrv.URL}},
		{ID: 0xbad2, Name: "junk", ClientURLs: []string{junk.URL}},
	}}
	eps := endpoints(c)
	eps["tls"] = tlsSrv.URL
	eps["junk"] = junk.URL
	// Long enough for the members that answer to do so on a loaded machine under -race
	// (a new connection, then the status request; 2 s has been too short on a machine
	// running several cluster tests at once); only the blackholed one waits it out.
	const timeout = 5 * time.Second
	ch, err := health.New(cli, health.WithSource(src), health.WithEndpoints(eps), health.WithTimeout(timeout))
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })

	c.Blackhole(slow)
	t.Cleanup(func() { c.Unblackhole(slow) })
	// A check given far longer than the members' timeout: the blackholed member's probe
	// ends by its own timeout, not by the check's context.
	ctx := etcdtest.Context(t, time.Minute)
	r, err := ch.Check(ctx)
	require.NoError(t, err)
	require.NoError(t, ctx.Err(), "each member's probe is bounded by its timeout, not by the check's context")
	require.Len(t, r.Members, 5)
	for _, m := range r.Members {
		switch m.Member.ID {
		case memberID(c, slow):
			assert.False(t, m.Reachable)
			assert.True(t, errors.Is(m.Err, context.DeadlineExceeded) || strings.Contains(m.Error, "deadline"), "%v", m.Err)
		case 0xbad1, 0xbad2:
			assert.False(t, m.Reachable, m.Name)
			assert.Error(t, m.Err, m.Name)
			if m.Name == "tls" {
				assert.False(t, m.Livez.OK, "TLS endpoint with an unknown authority is refused")
				assert.NotEmpty(t, m.Livez.Error)
			}
		default:
			assert.True(t, m.Reachable, "member %s: %v", m.Name, m.Err)
			assert.NotEmpty(t, m.Version)
			assert.NotZero(t, m.Status.Leader)
		}
	}
	assert.Equal(t, memberID(c, lead), r.Leader.ID)
	assert.Empty(t, r.AlarmsError)
	assert.Equal(t, 5, r.Quorum.Voters)
	assert.Equal(t, 2, r.Quorum.Healthy)
	assert.False(t, r.Quorum.HasQuorum, "two healthy of five listed voters")
	var unreachable []string
	for _, p := range r.Partition.Members {
		if p.Reason == health.ReasonUnreachable {
			unreachable = append(unreachable, p.Name)
		}
	}
	slices.Sort(unreachable)
	assert.Equal(t, []string{"junk", c.Members[slow].Name, "tls"}, unreachable)
}

func TestCheckSharedNode(t *testing.T) {
	cli := etcdtest.Client(t)
	ch, err := health.New(cli)
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	r := check(t, ch)
	require.Len(t, r.Members, 1)
	m := r.Members[0]
	assert.True(t, m.Reachable)
	assert.Equal(t, m.Member.ID, m.MemberID)
	assert.Equal(t, m.Member.ID, r.Leader.ID)
	assert.NotZero(t, r.ClusterID)
	assert.Zero(t, r.RevisionSpread)
	assert.True(t, r.Healthy)

	// The report serves as JSON as is (the monitor's REST API does so).
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var back health.Report
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, r.Members[0].Member, back.Members[0].Member)
	assert.Equal(t, r.Members[0].Status, back.Members[0].Status)
	assert.Equal(t, r.Quorum, back.Quorum)

	// A second check of the same leader adds nothing to the history.
	r = check(t, ch)
	assert.Len(t, r.LeaderHistory, 1)
}

func TestNewInvalidOptions(t *testing.T) {
	cli := etcdtest.Client(t)
	for name, opt := range map[string]health.Option{
		"zero timeout":     health.WithTimeout(0),
		"negative timeout": health.WithTimeout(-time.Second),
		"zero lag":         health.WithLagThreshold(0),
		"nil logger":       health.WithLogger(nil),
		"empty endpoint":   health.WithEndpoints(map[string]string{"m0": ""}),
	} {
		_, err := health.New(cli, opt)
		assert.ErrorIs(t, err, health.ErrInvalidArgument, name)
	}
	_, err := health.New(nil)
	assert.ErrorIs(t, err, health.ErrInvalidArgument)
	_, err = health.New(cli, health.WithTimeout(time.Second), nil)
	assert.ErrorIs(t, err, health.ErrInvalidArgument, "a nil option is an error, not a panic")
	assert.ErrorContains(t, err, "option 1")
}

func TestCheckNoMembership(t *testing.T) {
	src := failing{}
	ch, err := health.New(nil, health.WithSource(src))
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	r, err := ch.Check(etcdtest.Context(t, 5*time.Second))
	assert.Nil(t, r)
	assert.ErrorIs(t, err, health.ErrMembers)
}

type failing struct{ health.StatusSource }

func (failing) Members(context.Context) ([]health.Member, error) {
	return nil, errors.New("no cluster")
}

// slowLeader is a StatusSource whose answer from the leader is taken a while after the
// others': a slow probe, a loaded leader, a long network path.
type slowLeader struct {
	health.StatusSource
	leader health.ID
	delay  time.Duration
}

func (s *slowLeader) Status(ctx context.Context, m health.Member) (health.Status, error) {
	if m.ID == s.leader {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return health.Status{}, ctx.Err()
		}
	}
	return s.StatusSource.Status(ctx, m)
}

// A healthy cluster under the daemon's own benchmark load is not partitioned, even
// when the leader's status is read long after the followers': the raft index lag is
// judged against the rate entries are committed at, over more than one check. The
// threshold is scaled to what an in-process cluster commits under -race on a starved
// machine (tens to hundreds of entries a second): the leader's late answer alone puts it
// further ahead than that, as long as the machine commits an eighth of the load (the
// delay is that long: a machine starved by other tests commits at a fraction of it).
// The load is capped below what such a machine sustains, so that the rate is steady from
// one check to the next: unbounded, a starved cluster commits in bursts, and a burst
// within one window is what no measured rate explains.
func TestClusterNoPartitionUnderBenchmarkLoad(t *testing.T) {
	const (
		delay     = 6 * time.Second
		threshold = 50
		rate      = 60 // puts a second: 360 entries in the leader's delay
	)
	c := etcdtest.NewCluster(t, 3)
	cli := c.ClusterClient()
	src := &slowLeader{StatusSource: health.NewEtcdSource(cli), leader: memberID(c, c.Leader()), delay: delay}
	ch, err := health.New(cli, health.WithSource(src), health.WithEndpoints(endpoints(c)),
		health.WithTimeout(delay+3*time.Second), health.WithLagThreshold(threshold))
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })

	prefix := etcdtest.Prefix(t)
	runner, err := bench.New(cli, bench.WithPrefix(prefix))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(etcdtest.Context(t, 3*time.Minute))
	defer cancel()
	done := make(chan error, 1)
	go func() { // cancelled once the checks are done
		_, err := runner.Run(ctx, bench.Config{Workload: bench.Write, Duration: 2 * time.Minute, Connections: 4, Clients: 16,
			KeySize: 128, ValueSize: 16, Rate: rate, Prefix: prefix})
		done <- err
	}()
	// Wait until the load is on.
	var first *health.Report
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		select {
		case err := <-done:
			done <- err
			assert.Fail(ct, "benchmark ended", "%v", err)
			return
		default:
		}
		r, err := ch.Check(ctx)
		if !assert.NoError(ct, err) {
			return
		}
		if first == nil {
			first = r
		}
		lead, _ := r.Member(r.Leader.ID)
		f, _ := first.Member(r.Leader.ID)
		assert.Greater(ct, lead.RaftIndex, f.RaftIndex+2*threshold, "load is on")
	}, time.Minute, 100*time.Millisecond) // a check takes the delay at least

	var applied float64
	for range 4 {
		r, err := ch.Check(ctx)
		require.NoError(t, err)
		// A starved -race run may see a real election ("no leader"); what must never
		// show is a raft index lag that the apply rate explains.
		for _, p := range r.Partition.Members {
			assert.NotEqual(t, health.ReasonRaftLag, p.Reason, "raft lag on a healthy cluster under load: %+v (apply rate %.0f/s)", p, r.ApplyRate)
		}
		applied = max(applied, r.ApplyRate)
	}
	assert.Greater(t, applied*delay.Seconds(), float64(threshold), "the leader's late answer alone is ahead by more than the threshold")
	cancel()
	<-done
}

// Members that share a name, or have none yet (added, not started), are told apart by
// ID: WithEndpoints may name a member by its hexadecimal ID, and each keeps its own
// entry.
func TestMembersKeyedByID(t *testing.T) {
	cli := etcdtest.Client(t)
	src := extra{StatusSource: health.NewEtcdSource(cli), members: []health.Member{
		{ID: 0xd1, Name: "dup"}, {ID: 0xd2, Name: "dup"}, {ID: 0xd3, Name: ""},
	}}
	// Long enough for the shared node to answer on a new connection on a loaded machine:
	// the member it stands for must be reachable (127.0.0.1:1 refuses at once, and its
	// retries take the timeout whatever it is).
	ch, err := health.New(cli, health.WithSource(src), health.WithTimeout(3*time.Second),
		health.WithEndpoints(map[string]string{"d2": etcdtest.Endpoints()[0], "dup": "127.0.0.1:1"}))
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	r := check(t, ch)
	require.Len(t, r.Members, 4)
	byID := map[health.ID]health.MemberStatus{}
	for _, m := range r.Members {
		byID[m.Member.ID] = m
	}
	require.Len(t, byID, 4, "one entry per member ID")
	assert.Equal(t, etcdtest.Endpoints()[0], byID[0xd2].Endpoint, "the ID key wins over the name")
	assert.True(t, byID[0xd2].Reachable)
	assert.Equal(t, "127.0.0.1:1", byID[0xd1].Endpoint, "the name key applies where no ID key does")
	assert.False(t, byID[0xd1].Reachable)
	assert.ErrorIs(t, byID[0xd3].Err, health.ErrNoEndpoint)
	assert.Equal(t, []health.ID{0xd3}, []health.ID{r.Members[0].Member.ID}, "sorted by name, then ID")
	assert.Equal(t, []health.ID{0xd1, 0xd2}, []health.ID{r.Members[1].Member.ID, r.Members[2].Member.ID})
}

// IDs are one hexadecimal string everywhere in JSON: members, statuses, leader, cluster,
// leader history, alarms.
func TestJSONIDsAreHex(t *testing.T) {
	cli := etcdtest.Client(t)
	ch, err := health.New(cli)
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	r := check(t, ch)
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var raw struct {
		ClusterID string `json:"clusterID"`
		Members   []struct {
			ID        string `json:"id"`
			MemberID  string `json:"memberID"`
			ClusterID string `json:"clusterID"`
			Leader    string `json:"leader"`
		} `json:"members"`
		Leader struct {
			ID string `json:"id"`
		} `json:"leader"`
		LeaderHistory []struct {
			From, To string
		} `json:"leaderHistory"`
	}
	require.NoError(t, json.Unmarshal(b, &raw), "%s", b)
	hex := fmt.Sprintf("%x", uint64(r.Members[0].Member.ID))
	assert.Equal(t, hex, raw.Members[0].ID)
	assert.Equal(t, hex, raw.Members[0].MemberID)
	assert.Equal(t, hex, raw.Members[0].Leader)
	assert.Equal(t, hex, raw.Leader.ID)
	assert.Equal(t, hex, raw.LeaderHistory[0].To)
	assert.Equal(t, "0", raw.LeaderHistory[0].From)
	assert.Equal(t, fmt.Sprintf("%x", uint64(r.ClusterID)), raw.ClusterID)
	assert.Equal(t, raw.ClusterID, raw.Members[0].ClusterID)

	var id health.ID
	assert.ErrorIs(t, json.Unmarshal([]byte(`"xyz"`), &id), health.ErrInvalidArgument)
	require.NoError(t, json.Unmarshal([]byte(`"8e9e05c52164694d"`), &id))
	assert.Equal(t, health.ID(0x8e9e05c52164694d), id)
	assert.Equal(t, "8e9e05c52164694d", id.Hex())
}
