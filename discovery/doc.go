// Package discovery registers service instances in etcd, resolves them from a watched
// in-memory cache, and balances requests over them, including through gRPC.
//
// # Guarantees
//
//   - A Registrar keeps each registered instance under <prefix>/<service>/<id>, attached
//     to a lease of its TTL. If the lease is lost (revoked, or expired while etcd was
//     unreachable), it grants a new one and writes the key again; if the key is deleted
//     or overwritten without a lease, it writes it again; it also re-reads the key every
//     TTL/2 as a backstop. Attempts never stop until Deregister or Close, and every
//     rewrite it makes by itself, successful or not, backs off with jitter, so a key
//     that keeps being overwritten is never rewritten in a tight loop.
//   - Two Registrars holding the same instance (a rolling restart with stable IDs) do
//     not fight: the newest Register wins, the other yields while the winner's lease
//     holds the key and writes it again once the key is gone. Deregister and Close
//     delete a key only while it carries their own lease.
//   - A registrant that dies without deregistering disappears when its lease expires,
//     within the TTL (as etcd granted it: see WithTTL).
//   - Registrar.Close interrupts calls blocked on etcd and returns within a bound even
//     when etcd is unreachable: about three seconds, whatever the TTL.
//   - A Resolver answers Discover and Balancer picks from memory, so lookups keep working
//     while etcd has no leader or is unreachable (Stale reports that). Its cache resumes
//     the watch after disconnects and re-lists after compaction, emitting exactly the
//     differences, so its set converges to etcd's. Once WaitReady returns, every
//     service shows the first listing, whenever it was first looked up.
//   - Values under the prefix are untrusted: one that does not decode, or whose port,
//     address or weight is out of range (Instance.Validate), is skipped and logged. A
//     rewrite that changes nothing but the lease is not an Updated event.
//   - Memory follows etcd, not callers: looking up or picking from a service that has no
//     instance stores nothing, and a Balancer forgets (and stops health-checking) a
//     service nobody has picked from for its idle timeout.
//   - A Balancer picks from the Resolver's memory without etcd calls, allocation or,
//     once it has seen the latest change, locks (except smooth weighted round-robin).
//     Drained instances are never picked and failed ones are skipped for the cool-down,
//     measured on the monotonic clock. Weights are at most MaxWeight, so weighted sums
//     cannot overflow.
//   - The gRPC resolver (GRPCBuilder) pushes every change of a service's non-drained
//     instances to the ClientConn as it arrives; when none is left it pushes an empty
//     list, so that no policy keeps using a drained or removed server.
//
// What it does not guarantee: an instance that is alive but partitioned from etcd for
// longer than its TTL drops out of resolvers until it reconnects; resolvers cut off from
// etcd keep serving the last set they saw; a Watch reader that falls behind sees each
// instance's net change, not every intermediate value.
//
// # Lifecycle
//
// Registrar.Close deregisters everything it registered and stops its goroutines.
// Resolver.Close stops the cache and closes every Watch channel. Balancer.Close stops the
// goroutine that forgets idle services and runs health checks. Close a Balancer and any
// gRPC connection built on a Resolver before the Resolver. Every Close is idempotent.
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
//	sel.Report(err)
package discovery
