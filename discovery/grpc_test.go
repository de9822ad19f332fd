package discovery_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/etcd-monitor/etcd-monitor/discovery"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// grpcServer is a real gRPC server with the health service that counts the calls it
// serves.
type grpcServer struct {
	srv   *grpc.Server
	port  int
	calls atomic.Int64
}

func startGRPCServer(t *testing.T) *grpcServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &grpcServer{port: lis.Addr().(*net.TCPAddr).Port}
	s.srv = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		s.calls.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s.srv, health.NewServer())
	go s.srv.Serve(lis)
	t.Cleanup(s.srv.Stop)
	return s
}

// Calls spread over every registered server and stop reaching one soon after its
// deregistration or drain.
func TestGRPCResolver(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	reg := newRegistrar(t, cli, p)
	res := newResolver(t, ctx, etcdtest.Client(t), p)

	servers := make([]*grpcServer, 4)
	insts := make([]discovery.Instance, 4)
	for i := range servers {
		servers[i] = startGRPCServer(t)
		insts[i] = inst("payment-service", fmt.Sprint("s", i), servers[i].port)
	}
	for _, in := range insts[:3] {
		require.NoError(t, reg.Register(ctx, in))
	}

	conn, err := grpc.NewClient("etcd:///payment-service",
		grpc.WithResolvers(discovery.GRPCBuilder(res)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	require.NoError(t, err)
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	call := func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := client.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		return err
	}
	counts := func() []int64 {
		out := make([]int64, len(servers))
		for i, s := range servers {
			out[i] = s.calls.Load()
		}
		return out
	}
	// reaches reports which servers a round of n calls reached.
	reaches := func(c assert.TestingT, n int) []bool {
		before := counts()
		for range n {
			assert.NoError(c, call())
		}
		after := counts()
		out := make([]bool, len(servers))
		for i := range out {
			out[i] = after[i] > before[i]
		}
		return out
	}

	// Wait until all three are connected, then count a clean round.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []bool{true, true, true, false}, reaches(c, 30))
	}, 5*time.Second, 10*time.Millisecond)
	before := counts()
	for range 300 {
		require.NoError(t, call())
	}
	for i := range 3 {
		assert.InDelta(t, 100, servers[i].calls.Load()-before[i], 5, "server %d", i)
	}

	// Deregister s1: calls stop reaching it, and never reach it again.
	require.NoError(t, reg.Deregister(ctx, insts[1]))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []bool{true, false, true, false}, reaches(c, 30))
	}, 5*time.Second, 10*time.Millisecond, "the deregistered server stops getting calls")
	calls1 := servers[1].calls.Load()

	// A new one joins, and a drained one leaves.
	require.NoError(t, reg.Register(ctx, insts[3]))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, reaches(c, 30)[3])
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, reg.Drain(ctx, insts[0]))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []bool{false, false, true, true}, reaches(c, 30))
	}, 5*time.Second, 10*time.Millisecond, "the drained server stops getting calls")
	assert.Equal(t, []bool{false, false, true, true}, reaches(t, 100))
	assert.Equal(t, calls1, servers[1].calls.Load())
}

func TestGRPCBadTarget(t *testing.T) {
	ctx := etcdtest.Context(t, 10*time.Second)
	res := newResolver(t, ctx, etcdtest.Client(t), etcdtest.Prefix(t))
	conn, err := grpc.NewClient("etcd:///", grpc.WithResolvers(discovery.GRPCBuilder(res)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err == nil {
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
	}
	require.Error(t, err)
}

// With no usable instance left, the connection stops reaching the instance it used,
// whatever the balancing policy: RPCs fail instead of going to a drained or removed
// server that still answers.
func TestGRPCStopsWithNoInstance(t *testing.T) {
	for _, policy := range []string{"pick_first", "round_robin"} {
		for _, how := range []string{"deregister", "drain"} {
			t.Run(policy+"/"+how, func(t *testing.T) {
				ctx := etcdtest.Context(t, 30*time.Second)
				p := etcdtest.Prefix(t)
				reg := newRegistrar(t, etcdtest.Client(t), p)
				res := newResolver(t, ctx, etcdtest.Client(t), p)
				srv := startGRPCServer(t)
				a := inst("svc", "a", srv.port)
				require.NoError(t, reg.Register(ctx, a))
				conn, err := grpc.NewClient("etcd:///svc",
					grpc.WithResolvers(discovery.GRPCBuilder(res)),
					grpc.WithTransportCredentials(insecure.NewCredentials()),
					grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, policy)))
				require.NoError(t, err)
				defer conn.Close()
				client := healthpb.NewHealthClient(conn)
				call := func(wait bool) error {
					cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
					defer cancel()
					_, err := client.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(wait))
					return err
				}
				// The first call connects too: retried, as one call's 500ms may not be
				// enough for that on a loaded machine.
				require.EventuallyWithT(t, func(c *assert.CollectT) {
					assert.NoError(c, call(true))
				}, 10*time.Second, 50*time.Millisecond)

				if how == "drain" {
					require.NoError(t, reg.Drain(ctx, a))
				} else {
					require.NoError(t, reg.Deregister(ctx, a))
				}
				assert.EventuallyWithT(t, func(c *assert.CollectT) {
					assert.Error(c, call(false))
				}, 5*time.Second, 50*time.Millisecond, "RPCs stop reaching the server")
				served := srv.calls.Load()
				for range 5 {
					assert.Error(t, call(false))
				}
				assert.Equal(t, served, srv.calls.Load(), "no RPC reached the server")

				// And it comes back.
				if how == "drain" {
					require.NoError(t, reg.Undrain(ctx, a))
				} else {
					require.NoError(t, reg.Register(ctx, a))
				}
				assert.EventuallyWithT(t, func(c *assert.CollectT) {
					assert.NoError(c, call(true))
				}, 5*time.Second, 50*time.Millisecond)
			})
		}
	}
}
