// Package breaker is a circuit breaker whose state — closed, open, half-open — is shared
// through etcd by every instance of a service.
//
// Each instance counts the consecutive failures of the calls it makes through Do. When
// one instance reaches WithFailureThreshold it trips the breaker for all: it writes an
// open key, and a cool-down key on a lease of WithCooldown. Every instance watches the
// keys. When the cool-down lease expires the breaker is half-open, and the instance that
// wins a claim on a lease of WithProbeTimeout runs one probe call: success closes the
// breaker for all, failure opens it for another cool-down.
//
// # Guarantees
//
//   - A trip opens the breaker on every instance within the watch latency (the time
//     etcd takes to deliver the trip's event; milliseconds on a healthy cluster).
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
//   - Not guaranteed: failures are not pooled across instances (each counts its own), so
//     a fleet of n instances may see up to n×threshold failures before one trips it; and
//     while some instances are cut off, they decide alone.
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
