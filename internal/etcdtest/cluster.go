package etcdtest

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/tests/v3/framework/integration"
	"go.uber.org/zap"
)

// Cluster is an in-process etcd cluster whose members can be stopped, restarted and
// partitioned, and whose clients reach each member through a bridge that can drop or
// blackhole their connections.
//
// Members serve gRPC on Members[i].GRPCURL (through the bridge) and HTTP (/metrics,
// /livez, /readyz) on the unix sockets named by their client URLs.
type Cluster struct {
	*integration.Cluster
	t testing.TB
}

// ClusterOption adjusts the cluster configuration before it starts.
type ClusterOption func(*integration.ClusterConfig)

// WithQuota sets the backend quota of every member, so a test can raise NOSPACE.
func WithQuota(bytes int64) ClusterOption {
	return func(c *integration.ClusterConfig) { c.QuotaBackendBytes = bytes }
}

// WithElectionTicks sets how many of the framework's 10 ms ticks a follower waits
// without hearing from its leader before it campaigns; the framework's default is 10.
// 100 ms is less than a loaded machine (the race detector, other processes) may leave
// a member unscheduled, so such a cluster elects one leader after another, and a test
// that counts leader changes or needs a stable leader fails; 50 (half a second) holds
// there. A stopped leader is then replaced half a second later too. Members restarted
// keep it.
func WithElectionTicks(n int) ClusterOption {
	return func(*integration.ClusterConfig) { integration.ElectionTicks = n }
}

// WithConfig gives full access to the cluster configuration.
func WithConfig(fn func(*integration.ClusterConfig)) ClusterOption { return fn }

// NewCluster starts a cluster of size members and terminates it when the test ends.
// Tests that use it must not call t.Parallel: the framework keeps global state.
func NewCluster(t *testing.T, size int, opts ...ClusterOption) *Cluster {
	t.Helper()
	return StartCluster(t, size, opts...)
}

// StartCluster is NewCluster for benchmarks as well as tests.
func StartCluster(t testing.TB, size int, opts ...ClusterOption) *Cluster {
	t.Helper()
	integration.BeforeTestExternal(t)
	cfg := &integration.ClusterConfig{Size: size, UseBridge: true}
	// The framework reads its election ticks from a package variable as it creates
	// members: WithElectionTicks sets it for this cluster only.
	defer func(ticks int) { integration.ElectionTicks = ticks }(integration.ElectionTicks)
	for _, opt := range opts {
		opt(cfg)
	}
	q := quietTB{TB: t, min: clusterLogLevel()}
	c := integration.NewCluster(q, cfg)
	t.Cleanup(func() { c.Terminate(q) })
	c.WaitLeader(t)
	return &Cluster{Cluster: c, t: t}
}

// ClusterLogEnv names the variable that sets the lowest level of the members' own log
// lines a failing test prints: debug, info, warn (the default) or error. A test's own
// messages then stand out of a CI log that keeps only its head and tail.
const ClusterLogEnv = "ETCD_MONITOR_TEST_CLUSTER_LOG"

// zapLevels are the level names of zap's console encoder, lowest first.
var zapLevels = []string{"DEBUG", "INFO", "WARN", "ERROR", "DPANIC", "PANIC", "FATAL"}

func clusterLogLevel() int {
	switch os.Getenv(ClusterLogEnv) {
	case "debug":
		return 0
	case "info":
		return 1
	case "error":
		return 3
	default:
		return 2
	}
}

// quietTB passes on the log lines of the members' zap loggers (one "%s" argument each,
// the level between tabs) only from level min up, and every other call as it is.
type quietTB struct {
	testing.TB
	min int
}

func (q quietTB) Logf(format string, args ...any) {
	if len(args) == 1 {
		if line, ok := args[0].([]byte); ok {
			for _, l := range zapLevels[:q.min] {
				if bytes.Contains(line, []byte("\t"+l+"\t")) {
					return
				}
			}
		}
	}
	q.TB.Helper()
	q.TB.Logf(format, args...)
}

// Client returns a client that reaches the cluster only through member i's bridge, so
// that DropConnections(i) and Blackhole(i) cut this client off. It is closed when the
// test ends.
func (c *Cluster) Client(i int) *clientv3.Client {
	c.t.Helper()
	return c.client([]string{c.Members[i].GRPCURL})
}

// ClusterClient returns a client that knows every member. It is closed when the test ends.
func (c *Cluster) ClusterClient() *clientv3.Client {
	c.t.Helper()
	return c.client(c.Endpoints())
}

func (c *Cluster) client(endpoints []string) *clientv3.Client {
	cli := c.newClient(endpoints)
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// newClient returns a client of endpoints that the caller closes.
func (c *Cluster) newClient(endpoints []string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		c.t.Fatalf("etcdtest: cluster client: %v", err)
	}
	return cli
}

// Leader waits for a leader and returns its index.
func (c *Cluster) Leader() int {
	c.t.Helper()
	return c.WaitLeader(c.t)
}

// StopMember stops member i, keeping its data.
func (c *Cluster) StopMember(i int) {
	c.t.Helper()
	c.Members[i].Stop(c.t)
}

// RestartMember restarts a stopped member i and waits until it serves.
func (c *Cluster) RestartMember(i int) {
	c.t.Helper()
	if err := c.Members[i].Restart(c.t); err != nil {
		c.t.Fatalf("etcdtest: restart member %d: %v", i, err)
	}
	c.Members[i].WaitOK(c.t)
}

// StopLeader stops the current leader and waits until the others elect a new one. It
// returns the index of the stopped member, for RestartMember.
func (c *Cluster) StopLeader() int {
	c.t.Helper()
	lead := c.Leader()
	c.Members[lead].Stop(c.t)
	var rest []*integration.Member
	for i, m := range c.Members {
		if i != lead {
			rest = append(rest, m)
		}
	}
	c.WaitMembersForLeader(c.t, rest)
	return lead
}

// Partition cuts member i off from its peers (clients can still reach it).
func (c *Cluster) Partition(i int) {
	c.t.Helper()
	c.Members[i].InjectPartition(c.t, c.others(i)...)
}

// Heal undoes Partition.
func (c *Cluster) Heal(i int) {
	c.t.Helper()
	c.Members[i].RecoverPartition(c.t, c.others(i)...)
}

func (c *Cluster) others(i int) []*integration.Member {
	var out []*integration.Member
	for j, m := range c.Members {
		if j != i {
			out = append(out, m)
		}
	}
	return out
}

// DropConnections closes the client connections that pass through member i's bridge;
// clients reconnect at once.
func (c *Cluster) DropConnections(i int) { c.Members[i].Bridge().DropConnections() }

// Blackhole makes member i's bridge swallow all client traffic, in both directions,
// while keeping the connections open. The bridge checks for the blackhole between
// reads: on each open connection, the first bytes after Blackhole in each direction,
// which a read was already waiting for, still pass. A test whose next request through
// member i must be swallowed sends a probe through it first (a read, given up after a
// moment), which takes that pass.
func (c *Cluster) Blackhole(i int) { c.Members[i].Bridge().Blackhole() }

// WaitSwallowed waits, after Blackhole, until reads through cli go unanswered, and
// fails the test if they are still answered after 10s. Its reads take the pass the
// bridge gives the first bytes after Blackhole, so that the test's next request
// through the member (a renewal, a revoke, an unlock) is swallowed, as it means.
func WaitSwallowed(t testing.TB, cli *clientv3.Client) {
	t.Helper()
	swallowed := func(c *assert.CollectT) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := cli.Get(ctx, "/etcdtest/probe")
		assert.Error(c, err, "a read through the blackholed member was answered")
	}
	if !assert.EventuallyWithT(t, swallowed, 10*time.Second, 10*time.Millisecond) {
		t.FailNow()
	}
}

// Unblackhole undoes Blackhole.
func (c *Cluster) Unblackhole(i int) { c.Members[i].Bridge().Unblackhole() }

// PauseConnections stops member i's bridge from accepting new client connections and
// drops the existing ones, so its clients stay disconnected until ResumeConnections.
func (c *Cluster) PauseConnections(i int) {
	b := c.Members[i].Bridge()
	b.PauseConnections()
	b.DropConnections()
}

// ResumeConnections undoes PauseConnections.
func (c *Cluster) ResumeConnections(i int) { c.Members[i].Bridge().UnpauseConnections() }

// Compact compacts the cluster's history up to rev (physically, so watchers from before
// rev see ErrCompacted).
func (c *Cluster) Compact(ctx context.Context, rev int64) {
	c.t.Helper()
	cli := c.Members[c.Leader()].Client
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		c.t.Fatalf("etcdtest: compact to %d: %v", rev, err)
	}
}
