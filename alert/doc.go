// Package alert evaluates rules over the health reports and metric snapshots of etcd
// clusters and notifies people the way Prometheus and Alertmanager do: alerts go
// pending, fire after their rule's For, and are grouped, routed by label matchers to
// named receivers (console, webhook, Alertmanager, Slack, PagerDuty, email), inhibited
// and silenced. Alert state, the notification log and silences live in a store.Store, so
// a restart neither re-pages nor forgets a resolve.
//
// # Guarantees
//
//   - Pending and firing follow Prometheus: a finding goes pending, fires once it has
//     lasted For (measured on the data's own timestamps), and resolves at the first
//     evaluation without it, or KeepFiringFor later. The defaults give no notification
//     for a rolling restart in which each member is down up to 60 s, and page for a lost
//     quorum or an unreachable cluster 2 s (DefaultOutageGroupWait) after the first
//     health check that sees it, and for a cluster without a leader once it has lasted
//     NoLeaderFor (5 s, longer than an election) plus 2 s. The README lists each
//     default beside the etcd mixin's.
//   - A rule never resolves an alert it cannot see: when its input is missing (a nil
//     report or snapshot it needs, a member whose /metrics failed — zero fields are
//     "unknown", not "zero" — or a window too short) or it panics, its alerts keep their
//     state. A failed scrape raises EtcdMetricsUnavailable.
//   - Notifications follow Alertmanager: one per group (group_by, default cluster and
//     alertname) listing its alerts, after group_wait (default 10 s, and 2 s for
//     OutageAlerts unless a route sets it; a group still waiting is notified at the
//     earliest wait of its alerts, so an outage alert joining a group another alert
//     opened is not delayed); changes after group_interval; an
//     unchanged firing group again after repeat_interval (default 4 h); resolutions only
//     to receivers with send_resolved, and only for alerts that were notified firing.
//     Silenced and inhibited alerts are not notified and are listed with their status.
//   - Each receiver has its own queue, holding one notification per group (a newer one
//     replaces an older one not yet sent), sending critical ones first, a few at a time:
//     a notification waiting to retry (backoff, or a 429's Retry-After) never delays the
//     others, and a failing receiver never delays another receiver.
//   - Every attempt is in the notification log (Notifications: receiver, group, attempt,
//     status, error), in etcd_monitor_notifications_total{receiver,result} and in
//     etcd_monitor_notification_duration_seconds{receiver}. Secrets —
//     webhook and Slack URL paths and queries, header values, PagerDuty routing keys,
//     SMTP passwords — are redacted from every log line and every record.
//   - With a durable store, after a restart: nothing still firing is re-sent before
//     repeat_interval; a resolve not yet delivered, or a condition that cleared while
//     the daemon was down, is sent; pending alerts keep their start. An alert is
//     written when it starts, changes state or resolves, and while it holds at least
//     once a minute (at every evaluation for a rule with KeepFiringFor), so an incident
//     costs the store a write a minute per alert, not one per evaluation; its value in
//     the store may be that minute old.
//   - Per-member alerts are keyed by member ID (label member_id); the member name is a
//     label for people only.
//   - Memory per cluster is bounded by the short windows, not by GrowthWindow. A
//     cluster's history of snapshots (Input.History) keeps every snapshot within D, the
//     longest of GRPCWindow, HistogramWindow and the minute of EtcdRaftIndexLag's apply
//     rate, plus a minute: with snapshots at least I apart, at most floor(D/I) + 1 of
//     them, and never more than 3,000 (37 with the default thresholds at the default
//     10 s metrics interval, where keeping the whole 4 h growth window took 1,447).
//     Further back, to the longer of LeaderChangesWindow and FailedProposalsWindow plus
//     a minute, each snapshot's members keep only their two counters (24 bytes a
//     member), and to GrowthWindow plus a minute only their database sizes, one point a
//     minute of the clock (226 points of 16 bytes a member with the defaults). The rules
//     over counters and histograms see every snapshot of their windows;
//     EtcdExcessiveDatabaseGrowth's regression weighs each sample by the time it stands
//     for, so the thinning moves its prediction by a fraction of a percent.
//
// What is not guaranteed: delivery is at least once — a receiver that answers 5xx after
// accepting sees the retry. Notifications still undelivered when Close's shutdown
// timeout ends are recorded as dropped (their resolves stay in the store for the next
// run). A cluster that is never evaluated again keeps its alerts. A custom rule sees no
// History further back than D.
//
// # Lifecycle
//
// New validates everything — a bad option, route, matcher, receiver or threshold is a
// *FieldError naming the field, matching ErrInvalidArgument — loads the store, and
// starts one scheduling goroutine and one delivery goroutine per receiver. Close sends
// what is queued (within WithShutdownTimeout), then cancels the context of the sends
// still in flight and waits for them (a custom Sender must return when its ctx ends);
// it is idempotent.
// EvaluateCluster only updates state and never waits for a receiver. The store passed
// with WithStore stays the caller's to close, after the Manager.
//
//	m, err := alert.New(alert.WithConfig(cfg), alert.WithStore(st), alert.WithRegisterer(reg))
//	if err != nil { ... }
//	defer m.Close()
//	firing, err := m.EvaluateCluster(ctx, "prod", report, snapshot)
package alert
