// Package discovery registers service instances in etcd, resolves them from a watched
// in-memory cache, and balances requests over them, including through gRPC.
//
// # Guarantees
//
// A Registrar keeps each registered instance under <prefix>/<service>/<id>, attached to
// a lease of its TTL. If the lease is lost (revoked, or expired while etcd was
// unreachable), it grants a new one and writes the key again; if the key is deleted or
// overwritten, it writes it again; it also re-reads the key every TTL/2 as a backstop.
// Attempts back off with jitter and never stop until Deregister or Close. A registrant
// that dies without deregistering disappears when its lease expires, within the TTL.
//
// A Resolver answers Discover and Balancer picks from memory, so lookups keep working
// while etcd has no leader or is unreachable (Stale reports that). Its cache resumes the
// watch after disconnects and re-lists after compaction, emitting exactly the differences,
// so its set converges to etcd's.
//
// A Balancer picks from the Resolver's memory without locks (except smooth weighted
// round-robin) or allocation; drained instances are never picked and failed ones are
// skipped for the cool-down. The gRPC resolver (GRPCBuilder) pushes every change of a
// service's non-drained instances to the ClientConn as it arrives.
//
// What it does not guarantee: an instance that is alive but partitioned from etcd for
// longer than its TTL drops out of resolvers until it reconnects; resolvers cut off from
// etcd keep serving the last set they saw.
//
// # Lifecycle
//
// Registrar.Close deregisters everything it registered and stops its goroutines.
// Resolver.Close stops the cache and closes every Watch channel. Balancer.Close stops the
// health checks. Close a Balancer and any gRPC connection built on a Resolver before the
// Resolver.
//
//	reg, _ := discovery.NewRegistrar(cli, "/services", discovery.WithTTL(5*time.Second))
//	defer reg.Close()
//	_ = reg.Register(ctx, discovery.Instance{Service: "payment", ID: "a", Address: "10.0.0.1", Port: 8080})
//
//	res, _ := discovery.NewResolver(cli, "/services")
//	defer res.Close()
//	lb, _ := discovery.NewBalancer(res, discovery.RoundRobin)
//	defer lb.Close()
//	sel, err := lb.Pick("payment")
//	// ... call sel.Instance.Addr() ...
//	sel.Done(err)
package discovery
