package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/etcd-monitor/etcd-monitor/discovery"
)

func init() {
	register("lb", "balancer strategies, failure cool-down, and a gRPC client balanced over etcd", runLB)
}

func runLB(ctx context.Context, e *env) error {
	prefix := "/examples/lb/" + e.nodeID
	reg, err := discovery.NewRegistrar(e.cli, prefix)
	if err != nil {
		return err
	}
	defer reg.Close()
	for i, w := range []int{1, 2, 5} {
		inst := discovery.Instance{Service: "api", ID: fmt.Sprint("api-", i), Address: "10.0.0.1", Port: 9000 + i, Weight: w}
		if err := reg.Register(ctx, inst); err != nil {
			return err
		}
	}
	res, err := discovery.NewResolver(e.cli, prefix)
	if err != nil {
		return err
	}
	defer res.Close()
	if err := res.WaitReady(ctx); err != nil {
		return err
	}

	for _, s := range []discovery.Strategy{discovery.RoundRobin, discovery.Random, discovery.WeightedRoundRobin, discovery.PowerOfTwo} {
		lb, err := discovery.NewBalancer(res, s)
		if err != nil {
			return err
		}
		counts := map[string]int{}
		for range 800 {
			sel, err := lb.Pick("api")
			if err != nil {
				lb.Close()
				return err
			}
			counts[sel.Instance.ID]++
			sel.Report(nil)
		}
		lb.Close()
		e.printf("%-21s %s", s, formatCounts(counts))
	}

	lb, err := discovery.NewBalancer(res, discovery.ConsistentHash)
	if err != nil {
		return err
	}
	var line []string
	for _, user := range []string{"alice", "bob", "carol", "alice"} {
		sel, err := lb.PickKey("api", user)
		if err != nil {
			return err
		}
		line = append(line, user+"→"+sel.Instance.ID)
		sel.Report(nil)
	}
	lb.Close()
	e.printf("consistent-hash       %s", strings.Join(line, " "))

	// A failing instance is skipped for the cool-down.
	lb, err = discovery.NewBalancer(res, discovery.RoundRobin, discovery.WithCooldown(500*time.Millisecond))
	if err != nil {
		return err
	}
	defer lb.Close()
	sel, err := lb.Pick("api")
	if err != nil {
		return err
	}
	sel.Report(errors.New("connection refused"))
	counts := map[string]int{}
	for range 30 {
		s, err := lb.Pick("api")
		if err != nil {
			return err
		}
		counts[s.Instance.ID]++
		s.Report(nil)
	}
	e.printf("%s failed; next 30 picks: %s", sel.Instance.ID, formatCounts(counts))

	return grpcDemo(ctx, e, res, reg)
}

// grpcDemo registers three real gRPC servers and calls them through the etcd resolver.
func grpcDemo(ctx context.Context, e *env, res *discovery.Resolver, reg *discovery.Registrar) error {
	var calls [3]atomic.Int64
	var insts []discovery.Instance
	for i := range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			calls[i].Add(1)
			return h(ctx, req)
		}))
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go srv.Serve(lis)
		defer srv.Stop()
		inst := discovery.Instance{Service: "payment-service", ID: fmt.Sprint("grpc-", i), Address: "127.0.0.1", Port: lis.Addr().(*net.TCPAddr).Port}
		if err := reg.Register(ctx, inst); err != nil {
			return err
		}
		insts = append(insts, inst)
	}
	conn, err := grpc.NewClient("etcd:///payment-service",
		grpc.WithResolvers(discovery.GRPCBuilder(res)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	call := func(n int) error {
		for range n {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := client.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
			cancel()
			if err != nil {
				return err
			}
		}
		return nil
	}
	snapshot := func() [3]int64 { return [3]int64{calls[0].Load(), calls[1].Load(), calls[2].Load()} }
	if err := call(300); err != nil {
		return err
	}
	e.printf("gRPC etcd:///payment-service, 300 calls: %v", snapshot())
	if err := reg.Deregister(ctx, insts[1]); err != nil {
		return err
	}
	// The resolver pushes the new address list to gRPC at once; wait until a round of
	// calls no longer reaches grpc-1.
	start := time.Now()
	for {
		before := snapshot()
		if err := call(30); err != nil {
			return err
		}
		if snapshot()[1] == before[1] {
			break
		}
	}
	e.printf("deregistered grpc-1: no calls reach it %v later", time.Since(start).Round(time.Millisecond))
	before := snapshot()
	if err := call(300); err != nil {
		return err
	}
	after := snapshot()
	e.printf("next 300 calls: [%d %d %d]", after[0]-before[0], after[1]-before[1], after[2]-before[2])
	return nil
}

func formatCounts(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	return strings.Join(parts, " ")
}
