package monitor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// The alerts remediation answers (alert's default rules).
const (
	// AlertFragmentation fires per member when most of its database file is free pages.
	AlertFragmentation = "EtcdDatabaseHighFragmentationRatio"
	// AlertAlarm fires per member and alarm; remediation answers alarm="NOSPACE".
	AlertAlarm = "EtcdAlarm"
)

// Remediation is what the Service does by itself about one cluster's alerts. The zero
// value does nothing: remediation is off unless asked for, cluster by cluster.
//
// A silenced alert is not acted on: a silence holds remediation as it holds
// notifications. Each action is a maintenance operation like those the API starts (one at a time per
// cluster, guarded by the cluster's health, persisted, listed under
// /api/v1/clusters/{name}/maintenance), with Trigger "remediation" and the alert's
// fingerprint in Alert, so GET /api/v1/clusters/{name}/maintenance?alert=FINGERPRINT
// shows what was done about an alert. Every decision is logged.
type Remediation struct {
	// Defragment answers EtcdDatabaseHighFragmentationRatio with a defragmentation of
	// the cluster (one member at a time, the leader last), started only inside Window.
	Defragment bool
	// Window is when a defragmentation may start; required with Defragment. An
	// operation that starts inside the window is not stopped when the window closes.
	Window maintenance.Window
	// NoSpace answers a NOSPACE alarm (EtcdAlarm with alarm="NOSPACE") with compact,
	// defragment and disarm, at any time: the cluster refuses writes until then. The
	// alarm is disarmed only once every member is back under 80% of its quota; when the
	// live data itself fills the quota, the operation fails and the alarm stays.
	NoSpace bool
	// KeepRevisions is the history the NOSPACE compaction keeps. Default
	// maintenance.DefaultNoSpaceKeepRevisions.
	KeepRevisions int64
	// MoveLeader hands leadership away before the leader's defragmentation.
	MoveLeader bool
	// AllowSingleMember lets remediation defragment a cluster of one voting member,
	// which does not serve while it does.
	AllowSingleMember bool
	// DryRun records each action's plan (as a dry-run operation) without taking it.
	DryRun bool
	// Retry is how long after acting on an alert that still fires remediation acts on
	// it again. Default 1h. An action that failed (the cluster was unhealthy, a member
	// did not answer) is retried sooner: after at most RetryFailed; not a NOSPACE
	// recovery that failed because the live data itself fills the quota
	// (maintenance.ErrOverQuota), which only a person can fix. An alert that resolves
	// and fires again is acted on at once. Both hold across a restart or a replica's
	// takeover: what was done about a firing alert is read back from the store.
	Retry time.Duration
}

// DefaultRemediationRetry is Remediation.Retry's default.
const DefaultRemediationRetry = time.Hour

// RetryFailed bounds how long remediation waits to act again on an alert whose last
// action failed.
const RetryFailed = time.Minute

// WithRemediation turns remediation on for the named cluster. Default: none, for every
// cluster. An unknown cluster, Defragment without a Window, or a negative number is an
// error of New.
func WithRemediation(cluster string, r Remediation) Option {
	return optionFunc(func(o *options) {
		if o.maint.remediation == nil {
			o.maint.remediation = map[string]Remediation{}
		}
		o.maint.remediation[cluster] = r
	})
}

func (r Remediation) enabled() bool { return r.Defragment || r.NoSpace }

func (r Remediation) validate() error {
	switch {
	case r.Defragment && r.Window.IsZero():
		return errors.New("Defragment needs a Window (maintenance.ParseWindow)")
	case r.KeepRevisions < 0:
		return fmt.Errorf("KeepRevisions %d must not be negative", r.KeepRevisions)
	case r.Retry < 0:
		return fmt.Errorf("Retry %v must not be negative", r.Retry)
	}
	return nil
}

func (r Remediation) withDefaults() Remediation {
	if r.KeepRevisions == 0 {
		r.KeepRevisions = maintenance.DefaultNoSpaceKeepRevisions
	}
	if r.Retry == 0 {
		r.Retry = DefaultRemediationRetry
	}
	return r
}

// acted is remediation's memory of one alert: when it acted on which firing of it,
// with which operation.
type acted struct {
	startsAt time.Time
	at       time.Time
	op       string
}

// due reports whether an alert acted on as last (by an operation that failed, or not)
// may be acted on again at now.
func (r Remediation) due(last acted, failed bool, startsAt, now time.Time) bool {
	switch {
	case !last.startsAt.Equal(startsAt):
		return true // a new firing
	case failed:
		return now.Sub(last.at) >= min(r.Retry, RetryFailed)
	}
	return now.Sub(last.at) >= r.Retry
}

// remediate looks at the cluster's firing alerts once and starts what its remediation
// calls for, if anything; it returns what it decided, for the log and for tests.
func (r *maintRunner) remediate(ctx context.Context, c *clusterMaint) string {
	switch {
	case !c.rem.enabled():
		return "off"
	case ctx.Err() != nil || isClosed(r.s.interrupted):
		return "stopping" // no new operation once the Service shuts down
	}
	now := r.now()
	var firing []alert.Alert
	for _, a := range r.s.Alerts().Active() { // the evaluating manager (none on a standby replica)
		// A silence holds the remediation of the alerts it mutes, as it holds their
		// notifications: an operator's way to keep the Service's hands off.
		if a.Labels["cluster"] == c.name && len(a.Status.SilencedBy) == 0 {
			firing = append(firing, a)
		}
	}
	slices.SortFunc(firing, func(a, b alert.Alert) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	c.forget(firing)

	if c.rem.NoSpace {
		if as := matching(firing, func(a alert.Alert) bool { return a.Name == AlertAlarm && a.Labels["alarm"] == "NOSPACE" }); len(as) > 0 {
			req := maintenance.NoSpaceRequest{KeepRevisions: c.rem.KeepRevisions, MoveLeader: c.rem.MoveLeader,
				AllowSingleMember: c.rem.AllowSingleMember, DryRun: c.rem.DryRun}
			return r.act(c, as, now, OpRecoverNoSpace, req, func(ctx context.Context, progress func(maintenance.MemberDefrag)) (any, error) {
				req.Progress = progress
				return c.m.RecoverNoSpace(ctx, req)
			})
		}
	}
	if c.rem.Defragment {
		if as := matching(firing, func(a alert.Alert) bool { return a.Name == AlertFragmentation }); len(as) > 0 {
			a := as[0]
			if !c.rem.Window.Contains(now) {
				c.mu.Lock()
				logged := c.waiting[a.Fingerprint]
				c.waiting[a.Fingerprint] = true
				c.mu.Unlock()
				if !logged {
					c.log.Info("remediation: defragmentation waits for the maintenance window", zap.String("alert", a.Fingerprint),
						zap.String("alertName", a.Name), zap.Stringer("window", c.rem.Window), zap.Time("next", c.rem.Window.Next(now)))
				}
				return "outside window"
			}
			req := maintenance.DefragmentRequest{MoveLeader: c.rem.MoveLeader, AllowSingleMember: c.rem.AllowSingleMember, DryRun: c.rem.DryRun}
			return r.act(c, as, now, OpDefragment, req, func(ctx context.Context, progress func(maintenance.MemberDefrag)) (any, error) {
				req.Progress = progress
				return c.m.Defragment(ctx, req)
			})
		}
	}
	return "nothing to do"
}

// act starts an operation answering as (the alerts of one condition, such as NOSPACE on
// several members: one operation answers them all), unless it acted on these firings
// within Retry. as[0] is the operation's Alert.
func (r *maintRunner) act(c *clusterMaint, as []alert.Alert, now time.Time, kind string, req any, fn opFunc) string {
	a := as[0]
	r.recall(c, as)
	c.mu.Lock()
	due := false
	for _, x := range as {
		last, seen := c.acted[x.Fingerprint]
		if !seen || c.rem.due(last, c.failedOps[last.op], x.StartsAt, now) {
			due = true
		}
	}
	c.mu.Unlock()
	if !due {
		return "acted already"
	}
	fps := make([]string, len(as))
	for i, x := range as {
		fps[i] = x.Fingerprint
	}
	body := apiJSON(req)
	op, err := r.start(c, MaintenanceOperation{Kind: kind, DryRun: c.rem.DryRun, Trigger: TriggerRemediation,
		Alert: a.Fingerprint, AlertName: a.Name, Alerts: fps, Request: body}, fn)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusConflict {
			c.log.Debug("remediation: waits for the running operation", zap.String("alert", a.Fingerprint), zap.Error(err))
			return "busy"
		}
		c.log.Warn("remediation: not started", zap.String("alert", a.Fingerprint), zap.Error(err))
		return "not started"
	}
	c.mu.Lock()
	for _, x := range as {
		c.acted[x.Fingerprint] = acted{startsAt: x.StartsAt, at: now, op: op.ID}
		delete(c.waiting, x.Fingerprint)
	}
	c.mu.Unlock()
	c.log.Info("remediation: started "+kind, zap.String("id", op.ID), zap.String("alert", a.Fingerprint), zap.String("alertName", a.Name),
		zap.Strings("alerts", fps), zap.Any("labels", a.Labels), zap.Bool("dryRun", c.rem.DryRun))
	return "started " + kind
}

// recall fills in what remediation did about the alerts of as it has no memory of, from
// the store: the newest operation answering one, started since it fired, by an earlier
// process or another replica's term. So a restart or a takeover does not act again
// within Retry on what was just done. A store that cannot be read leaves the memory as
// it is.
func (r *maintRunner) recall(c *clusterMaint, as []alert.Alert) {
	c.mu.Lock()
	var unknown []alert.Alert
	for _, x := range as {
		if _, seen := c.acted[x.Fingerprint]; !seen {
			unknown = append(unknown, x)
		}
	}
	c.mu.Unlock()
	if len(unknown) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	recs, err := r.st.MaintenanceOps(ctx, store.MaintenanceQuery{Cluster: c.name, Limit: maxHistoryLimit})
	if err != nil {
		c.log.Warn("remediation: past operations not read", zap.Error(err))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range unknown {
		for _, rec := range recs { // newest first
			op := storedOperation(rec)
			// A dry run does not count for a remediation that acts, nor the reverse.
			if op.Trigger != TriggerRemediation || op.DryRun != c.rem.DryRun || op.Started.Before(x.StartsAt) ||
				(op.Alert != x.Fingerprint && !slices.Contains(op.Alerts, x.Fingerprint)) {
				continue
			}
			if _, seen := c.acted[x.Fingerprint]; !seen {
				c.acted[x.Fingerprint] = acted{startsAt: x.StartsAt, at: op.Started, op: op.ID}
				if op.State == OpFailed && !strings.Contains(op.Error, maintenance.ErrOverQuota.Error()) {
					c.failedOps[op.ID] = true
				}
			}
			break
		}
	}
}

// forget drops what remediation remembers about alerts no longer firing.
func (c *clusterMaint) forget(firing []alert.Alert) {
	gone := func(fp string) bool {
		return !slices.ContainsFunc(firing, func(a alert.Alert) bool { return a.Fingerprint == fp })
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for fp := range c.acted {
		if gone(fp) {
			delete(c.acted, fp)
		}
	}
	for fp := range c.waiting {
		if gone(fp) {
			delete(c.waiting, fp)
		}
	}
	for op := range c.failedOps {
		if !slices.ContainsFunc(slices.Collect(maps.Values(c.acted)), func(a acted) bool { return a.op == op }) {
			delete(c.failedOps, op)
		}
	}
}

func matching(alerts []alert.Alert, match func(alert.Alert) bool) []alert.Alert {
	var out []alert.Alert
	for _, a := range alerts {
		if match(a) {
			out = append(out, a)
		}
	}
	return out
}
