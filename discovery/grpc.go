package discovery

import (
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc/resolver"
)

// GRPCScheme is the target scheme of the gRPC resolver: "etcd:///<service>".
const GRPCScheme = "etcd"

// GRPCBuilder returns a gRPC resolver.Builder over r. Pass it to grpc.NewClient with
// grpc.WithResolvers and dial "etcd:///<service>": the connection gets the addresses of
// the service's instances that are not drained, and every change after that. When none
// is left (all drained or removed) it hands gRPC an empty address list, so that the
// connection stops using the servers it had and fails RPCs (or, with WaitForReady, holds
// them) until an instance comes back. Pair it with a balancing policy such as
// round_robin in the service config; gRPC's default, pick_first, uses a single instance.
//
// The builder does not own r: close the Resolver after the connections that use it.
func GRPCBuilder(r *Resolver) resolver.Builder { return &grpcBuilder{r: r} }

type grpcBuilder struct{ r *Resolver }

func (b *grpcBuilder) Scheme() string { return GRPCScheme }

func (b *grpcBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	name := strings.Trim(target.Endpoint(), "/")
	if msg := validName(name); msg != "" {
		return nil, fmt.Errorf("%w: gRPC target %q: service name %s", ErrInvalidArgument, target.URL.String(), msg)
	}
	r := b.r
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	sub := r.addSubLocked(name, false)
	r.wg.Add(1)
	r.mu.Unlock()

	g := &grpcResolver{r: r, name: name, sub: sub, stop: make(chan struct{})}
	go g.run(cc)
	return g, nil
}

type grpcResolver struct {
	r    *Resolver
	name string
	sub  *subscriber
	stop chan struct{}
	once sync.Once
}

// run pushes the service's address list to gRPC on every change. gRPC's ClientConn may
// block briefly in UpdateState, so this runs apart from the cache's goroutine.
func (g *grpcResolver) run(cc resolver.ClientConn) {
	defer g.r.wg.Done()
	defer g.r.removeSub(g.name, g.sub.id)
	var last *snapshot
	// Wait for the first listing before reporting anything: an empty list before it would
	// fail RPCs that a moment later would succeed.
	select {
	case <-g.r.ready:
	case <-g.stop:
		return
	case <-g.sub.closed:
		return
	}
	g.sub.wake()
	for {
		select {
		case <-g.stop:
			return
		case <-g.sub.closed:
			return
		case <-g.sub.notify:
		}
		snap := g.r.lookup(g.name)
		if snap == nil || snap == last {
			continue
		}
		last = snap
		var state resolver.State
		for _, inst := range snap.instances {
			if inst.Drained {
				continue
			}
			addr := resolver.Address{Addr: inst.Addr()}
			state.Addresses = append(state.Addresses, addr)
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
		}
		// An error here means the balancer rejected the list (for an empty one, always);
		// the next change retries.
		_ = cc.UpdateState(state)
		if len(state.Endpoints) == 0 {
			// Only an empty list makes the policies drop the servers they use (they keep
			// the last good list on a resolver error); the error then says why RPCs fail.
			cc.ReportError(fmt.Errorf("%w: service %q", ErrNoInstance, g.name))
		}
	}
}

func (g *grpcResolver) ResolveNow(resolver.ResolveNowOptions) {}

func (g *grpcResolver) Close() { g.once.Do(func() { close(g.stop) }) }
