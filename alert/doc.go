// Package alert evaluates rules over health reports and metric snapshots of an etcd
// cluster and delivers the resulting alerts — deduplicated, retried, with history — to
// notifiers: console, Alertmanager-compatible webhook, Slack, PagerDuty and email.
//
// # Guarantees
//
// An alert is identified by its fingerprint (rule name plus labels). While it keeps
// firing it is delivered once per dedup window (default 5 min), however often it is
// evaluated; its resolution is delivered at once, with the same fingerprint (PagerDuty's
// dedup_key), so the receiver closes the incident it opened. Each notifier has its own
// queue and goroutine: notifications to one channel arrive in the order they were raised
// (a resolve never overtakes its trigger), and a slow or failing channel never delays
// the others. A failed delivery is retried with backoff; the Retry-After of a 429
// or 5xx answer is honoured (capped by Retry.MaxRetryAfter). Every attempt, success and
// failure is recorded in Deliveries, every firing and resolution in History (the last
// 1000 each), so an alert is never lost from the record even when no channel accepts it.
//
// What is not guaranteed: delivery is at least once per window, not exactly once — a
// receiver that answers 5xx after accepting sees the retry. Alerts still queued when
// Close is called are abandoned (recorded as failed); call Flush first to wait for them.
//
// # Lifecycle
//
// New starts one goroutine per notifier; Close stops them and waits. Evaluate only
// enqueues deliveries and never blocks on a notifier.
//
//	m, err := alert.New(alert.WithWebhook(alert.WebhookConfig{URL: "http://am:9093/hook"}))
//	if err != nil { ... }
//	defer m.Close()
//	firing, err := m.Evaluate(ctx, report, snapshot)
package alert
