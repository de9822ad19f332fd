// Package health checks an etcd cluster member by member and derives what no single
// member can tell: quorum, leader agreement, split brain, network partitions, alarms and
// the history of leader changes.
//
// # Guarantees
//
// Check asks every member in parallel, each under its own timeout, so a member that is
// down, slow or refuses the connection costs at most that timeout and never hides the
// others: its MemberStatus carries the error and the rest of the Report is complete.
// Quorum counts only reachable voting members that see a leader. Split brain is reported
// when reachable members in one raft term name different leaders, or when they belong to
// different clusters. A member is reported as partitioned when it cannot be reached,
// when it sees no leader while others do, or when its raft index lags the leader's by
// more than the configured threshold in LagChecks consecutive checks. That lag is judged
// against the rate the cluster commits entries at, measured between checks: statuses
// are answers taken at different moments, and under load the leader appends thousands
// of entries a second, so a healthy cluster under a benchmark is not reported as
// partitioned. Membership is read with a serializable request, so a cluster without
// quorum is still described; if even that fails, the last known membership is used.
// Members are keyed by ID, never by name: names may be empty (a member added but not
// started) or shared. IDs are hexadecimal strings in JSON, as etcdctl prints them.
//
// A failing /livez or /readyz answer is summarised in Probe.Error as one plain line
// (etcd's first failing check, printable characters only, at most MaxProbeError bytes),
// since the body is the member's to choose. Stats counts every check and its duration
// in cumulative buckets, for export as a histogram.
//
// New returns an error wrapping ErrInvalidArgument, naming the argument, for a nil
// option or an option out of range; it never panics.
//
// What Check does not guarantee: a report is a set of point-in-time views taken a few
// milliseconds apart, so a leader change during a check can show up as disagreement in
// that one report. Leader changes that happen and revert between two checks are not seen.
// A member that falls behind is reported as lagging one check later than a single
// sample could, and not at all by the first check of a Checker.
//
// # Lifecycle
//
// A Checker runs no goroutines of its own, but between checks it keeps a gRPC
// connection to each member for its status (dropped when a request through it fails, so
// that a member that comes back is reached through a new one at once, and when the
// member leaves the cluster) and the kept-alive HTTP connections to /livez and /readyz
// (on a transport of its own unless WithHTTPClient gave a client), so that a check costs
// no handshakes. The gRPC connections are shared with the metrics.Collector of the same
// client (one per member and endpoint: given the same endpoints, one per member for
// both). Close closes the HTTP ones, and the gRPC ones once no Collector of the client
// uses them either; closing the client closes the gRPC ones
// too, and the HTTP connections of a member that leaves close at once. The client
// passed to New stays the caller's. Check is safe for concurrent use, and works after Close without keeping
// connections; a Check that Close overlaps keeps none either once it returns.
//
//	c, err := health.New(cli, health.WithTimeout(2*time.Second))
//	if err != nil { ... }
//	r, err := c.Check(ctx)
//	if err != nil { ... }
//	if !r.Quorum.HasQuorum { ... }
package health
