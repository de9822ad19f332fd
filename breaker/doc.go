// Package breaker is a circuit breaker whose state — closed, open, half-open — is shared
// through etcd by every instance of a service.
//
// Each instance counts the consecutive failures of the calls it makes through Do. When
// one instance reaches WithFailureThreshold it trips the breaker for all: it writes an
// open key, and a cool-down key on a lease of WithCooldown. The threshold is per
// instance, not fleet-wide: counting every failure in etcd would cost a write per
// failed call, at the moment the protected service is struggling, and "consecutive" has
// no meaning across instances that run concurrently. Every instance watches the keys.
// When the cool-down lease expires the breaker is half-open, and the instance that wins
// a claim on a lease of WithProbeTimeout runs one probe call: success closes the breaker
// for all, failure opens it for another cool-down.
//
// # Guarantees
//
//   - Threshold: an instance trips the breaker for all when it has seen
//     WithFailureThreshold consecutive failures of its own calls, counted while it sees
//     the breaker closed; a success on that instance resets its count, a success or
//     failure on another instance does not touch it, and every count restarts when the
//     breaker closes. So when every call fails, n instances see at most
//     n·(threshold−1) + 1 failures before the trip is written (threshold on one
//     instance, one less on each other), plus the calls already in flight, or started
//     before the watch latency has passed.
//   - A trip opens the breaker on every instance within the watch latency (the time
//     etcd takes to deliver the trip's event; milliseconds on a healthy cluster).
//   - An instance's view never goes back in time: each key's state is known at a
//     revision, from the watch or from the instance's own transactions, and an older
//     event or read (a watch lagging behind the instance's own write) is ignored. A trip,
//     probe claim or probe outcome whose condition fails because the view was stale
//     reads etcd's state in the same transaction and takes it: a call that fails after
//     another instance tripped the breaker neither trips it again nor starts a cool-down
//     of its own.
//   - At most one probe runs at a time in the whole fleet: the probe claim is created
//     only if none exists, and its context ends when its lease may expire. A probe whose
//     instance crashes frees the claim when the lease expires; another instance probes.
//   - The cool-down is measured by etcd (a lease TTL, whole seconds, at least etcd's
//     minimum TTL), not by the instances' clocks.
//   - When etcd is unreachable the instance keeps working on local state, as a classic
//     breaker of its own: its failures still open it (the trip it cannot write stays
//     local), for the cool-down by its own clock, after which it lets one of its own
//     calls through as a probe. An instance whose watch breaks while the shared breaker
//     is open stays open for one cool-down, then probes locally in the same way. A view
//     that a silent cut-off (no error, no events) left showing a cool-down long past its
//     TTL (twice the cool-down, plus the probe timeout, plus 5s) is treated as over. The
//     shared state takes over again when the watch re-syncs or a trip or claim reaches
//     etcd.
//   - Not guaranteed: failures are not pooled across instances (see Threshold): a fleet
//     whose instances each see failures interleaved with their own successes may never
//     trip it; and while some instances are cut off, they decide alone.
//
// # Lifecycle
//
// New starts one goroutine that lists and watches the keys (until its first list the
// instance is closed on local state); it does not block. Close stops it and waits for it;
// it is idempotent and leaves the shared state in etcd. Do, Trip and Reset may be called
// from any goroutine. The client stays the caller's.
//
//	b, err := breaker.New(cli, "/breakers/payments", breaker.WithCooldown(30*time.Second))
//	if err != nil { return err }
//	defer b.Close()
//	err = b.Do(ctx, func(ctx context.Context) error { return pay(ctx, order) })
//	if errors.Is(err, breaker.ErrOpen) { return errServiceUnavailable }
package breaker
