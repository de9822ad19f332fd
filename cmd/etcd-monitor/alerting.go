package main

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// keyedCluster is a cluster's configuration with its key in the file.
type keyedCluster struct {
	key string
	cc  *ClusterConfig
}

func (c *Config) allClusters() []keyedCluster {
	out := []keyedCluster{{"etcd", &c.Etcd.ClusterConfig}}
	for i := range c.Clusters {
		out = append(out, keyedCluster{fmt.Sprintf("clusters[%d]", i), &c.Clusters[i]})
	}
	return out
}

// legacyReceivers are the names of the receivers made from the first daemon's channels
// (alerts.console, webhooks, slack, pagerduty, email), as alertOptions names them.
func (c *Config) legacyReceivers() []string {
	a := c.Alerts
	var out []string
	if a.Console {
		out = append(out, "console")
	}
	for i, w := range a.Webhooks {
		out = append(out, webhookName(w, i))
	}
	if a.Slack != nil {
		out = append(out, "slack")
	}
	if a.PagerDuty != nil {
		out = append(out, "pagerduty")
	}
	if a.Email != nil {
		out = append(out, "email")
	}
	return out
}

func webhookName(w WebhookConfig, i int) string {
	if w.Name != "" {
		return w.Name
	}
	return "webhook-" + strconv.Itoa(i)
}

// withLegacy returns cfg with a stand-in receiver for each legacy channel, so that
// routes may name them when cfg is validated on its own.
func withLegacy(cfg alert.Config, legacy []string) alert.Config {
	cfg.Receivers = slices.Clone(cfg.Receivers)
	for _, n := range legacy {
		cfg.Receivers = append(cfg.Receivers, alert.ReceiverConfig{Name: n, Type: alert.TypeConsole})
	}
	return cfg
}

// fieldError turns an alert.FieldError into a keyError under key (the FieldError's
// path replaced from: the part it names inside a configuration validated on its own).
func fieldError(key, from string, err error) error {
	var fe *alert.FieldError
	if !errors.As(err, &fe) {
		return bad(key, "%v", err)
	}
	field := fe.Field
	if from != "" {
		field = strings.TrimPrefix(strings.TrimPrefix(field, from), ".")
	}
	if field != "" && !strings.HasPrefix(field, "[") {
		field = "." + field
	}
	return bad(key+field, "%s", fe.Reason)
}

// validateAlerting checks routes, receivers, inhibit rules and thresholds, global and
// per cluster, naming the key at fault.
func (c *Config) validateAlerting() error {
	legacy := c.legacyReceivers()
	a := c.Alerts.Config
	for i, r := range a.Receivers {
		if slices.Contains(legacy, r.Name) {
			return bad(fmt.Sprintf("alerts.receivers[%d].name", i),
				"%q is also the receiver made from a channel under alerts (console, webhooks, slack, pagerduty, email); rename one", r.Name)
		}
		if r.Type == alert.TypeEmail {
			if host, _, err := net.SplitHostPort(r.Addr); err == nil {
				if err := plaintextAuth(fmt.Sprintf("alerts.receivers[%d]", i), host, r.Username, r.AllowPlaintext); err != nil {
					return err
				}
			}
		}
	}
	if err := withLegacy(a, legacy).Validate(); err != nil {
		return fieldError("alerts", "", err)
	}
	if _, err := c.thresholds(); err != nil {
		return err
	}
	for _, kc := range c.allClusters() {
		if _, err := c.clusterThresholds(kc); err != nil {
			return err
		}
		for j, r := range kc.cc.Routes {
			key := fmt.Sprintf("%s.routes[%d]", kc.key, j)
			if r == nil {
				return bad(key, "empty route")
			}
			one := withLegacy(alert.Config{Receivers: a.Receivers, Route: &alert.Route{Routes: []*alert.Route{r}}}, legacy)
			if err := one.Validate(); err != nil {
				return fieldError(key, "route.routes[0]", err)
			}
		}
	}
	return nil
}

// thresholds are alerts.thresholds with the first daemon's thresholds that are set on
// top.
func (c *Config) thresholds() (alert.Thresholds, error) {
	t := alert.DefaultThresholds()
	if c.Alerts.Thresholds != nil {
		t = *c.Alerts.Thresholds
	}
	l := c.Thresholds
	if l.MaxLatencyMS > 0 {
		t.RequestLatencyP99 = time.Duration(l.MaxLatencyMS) * time.Millisecond
	}
	if l.MaxLeaderChanges != nil {
		t.LeaderChanges = *l.MaxLeaderChanges + 1 // "max" is allowed; one more fires
	}
	if l.LeaderChangesIn > 0 {
		t.LeaderChangesWindow = l.LeaderChangesIn
	}
	if err := t.Validate(); err != nil {
		return t, fieldError("alerts.thresholds", "", err)
	}
	return t, nil
}

// clusterThresholds are the thresholds of one cluster: the global ones with the keys of
// its own thresholds block on top; nil when it has none.
func (c *Config) clusterThresholds(kc keyedCluster) (*alert.Thresholds, error) {
	node := &kc.cc.Thresholds
	if node.Kind == 0 {
		return nil, nil
	}
	key := kc.key + ".thresholds"
	base, err := c.thresholds()
	if err != nil {
		return nil, err
	}
	var over map[string]yaml.Node
	if err := node.Decode(&over); err != nil {
		return nil, bad(key, "want a mapping of thresholds (the keys of alerts.thresholds): %v", err)
	}
	raw, err := yaml.Marshal(base)
	if err != nil {
		return nil, err
	}
	var merged map[string]any
	if err := yaml.Unmarshal(raw, &merged); err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(over)) {
		if _, ok := merged[name]; !ok {
			return nil, bad(key+"."+name, "unknown threshold (line %d)", over[name].Line)
		}
		v := over[name]
		merged[name] = &v
	}
	raw, err = yaml.Marshal(merged)
	if err != nil {
		return nil, err
	}
	var t alert.Thresholds
	if err := yaml.Unmarshal(raw, &t); err != nil {
		return nil, bad(key, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := t.Validate(); err != nil {
		return nil, fieldError(key, "", err)
	}
	return &t, nil
}

// alerting is the alert configuration the daemon runs: alerts.* with the thresholds, the
// clusters' own thresholds and routes, and the first daemon's settings folded in. It
// expects a validated Config.
func (c *Config) alerting() (alert.Config, error) {
	a := c.Alerts.Config
	t, err := c.thresholds()
	if err != nil {
		return a, err
	}
	a.Thresholds = &t
	a.ClusterThresholds = maps.Clone(a.ClusterThresholds)
	var clusterRoutes []*alert.Route
	for _, kc := range c.allClusters() {
		ct, err := c.clusterThresholds(kc)
		if err != nil {
			return a, err
		}
		if ct != nil {
			if a.ClusterThresholds == nil {
				a.ClusterThresholds = map[string]alert.Thresholds{}
			}
			a.ClusterThresholds[kc.cc.Name] = *ct
		}
		is, err := alert.NewMatcher(alert.MatchEqual, "cluster", kc.cc.Name)
		if err != nil {
			return a, bad(kc.key+".name", "%v", err)
		}
		for _, r := range kc.cc.Routes {
			cr := *r
			cr.Matchers = append(alert.Matchers{is}, r.Matchers...)
			clusterRoutes = append(clusterRoutes, &cr)
		}
	}
	if len(clusterRoutes) > 0 || c.Alerts.DedupWindow > 0 {
		var root alert.Route
		if a.Route != nil {
			root = *a.Route
		} else {
			// What alert does with no route: every receiver gets every alert.
			root = *alert.DefaultRoute()
			for _, r := range a.Receivers {
				root.Routes = append(root.Routes, &alert.Route{Receiver: r.Name, Continue: true})
			}
		}
		root.Routes = append(clusterRoutes, root.Routes...)
		if root.RepeatInterval == 0 && c.Alerts.DedupWindow > 0 {
			root.RepeatInterval = c.Alerts.DedupWindow
		}
		a.Route = &root
	}
	if a.InhibitRules == nil && c.Thresholds.MinAvailableNodes > 0 {
		// The daemon's own rule is muted like the per-member alerts: a lost quorum says it.
		a.InhibitRules = append(alert.DefaultInhibitRules(), alert.InhibitRule{
			SourceMatchers: alert.MustParseMatchers(`alertname=~"EtcdInsufficientMembers|EtcdClusterUnreachable"`),
			TargetMatchers: alert.MustParseMatchers(`alertname="EtcdAvailableMembersLow"`),
			Equal:          []string{"cluster"},
		})
	}
	return a, nil
}

// alertOptions turns the configuration into the options of the monitor's alert manager.
func alertOptions(cfg *Config, log *zap.Logger) ([]alert.Option, error) {
	ac, err := cfg.alerting()
	if err != nil {
		return nil, err
	}
	opts := []alert.Option{alert.WithConfig(ac), alert.WithExtraRules(extraRules(cfg.Thresholds)...),
		alert.WithShutdownTimeout(cfg.engineShutdownTimeout())}
	a := cfg.Alerts
	if a.Console {
		opts = append(opts, alert.WithConsole(log.Named("alert")))
	}
	for i, w := range a.Webhooks {
		opts = append(opts, alert.WithWebhook(alert.WebhookConfig{Name: webhookName(w, i), URL: w.URL, Headers: w.Headers}))
	}
	if a.Slack != nil {
		opts = append(opts, alert.WithSlack(alert.SlackConfig{WebhookURL: a.Slack.WebhookURL, Channel: a.Slack.Channel}))
	}
	if a.PagerDuty != nil {
		opts = append(opts, alert.WithPagerDuty(alert.PagerDutyConfig{RoutingKey: a.PagerDuty.RoutingKey, URL: a.PagerDuty.URL}))
	}
	if e := a.Email; e != nil {
		opts = append(opts, alert.WithEmail(alert.EmailConfig{Addr: e.Addr, From: e.From, To: e.To,
			Username: e.Username, Password: e.Password, AllowPlaintext: e.AllowPlaintext}))
	}
	return opts, nil
}

// extraRules are the operator's thresholds that the default rules do not cover.
func extraRules(t Thresholds) []alert.Rule {
	var rules []alert.Rule
	if t.MinAvailableNodes > 0 {
		rules = append(rules, alert.Rule{Name: "EtcdAvailableMembersLow", Severity: alert.Critical, For: 3 * time.Minute,
			Summary: "fewer etcd members available than configured", Needs: alert.NeedsHealth,
			RunbookURL: alert.RunbookBase + "etcdavailablememberslow",
			Expr: fmt.Sprintf("sum without (instance) (up{%[1]s} == bool 1) < clamp_max(count without (instance) (up{%[1]s}), %[2]d)",
				alert.EtcdSelector, t.MinAvailableNodes),
			Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
				up, voters := 0, 0
				for _, m := range h.Members {
					if !m.Member.IsLearner {
						voters++
						if m.Reachable {
							up++
						}
					}
				}
				// A cluster smaller than the minimum (a single test node) is held to
				// having all its members.
				want := min(t.MinAvailableNodes, voters)
				if up >= want {
					return nil
				}
				return []alert.Finding{{Value: float64(up), Description: fmt.Sprintf("%d of %d voting members available, want at least %d", up, voters, want)}}
			}})
	}
	if t.MaxDBSizeMB > 0 {
		limit := int64(t.MaxDBSizeMB) << 20
		rules = append(rules, alert.Rule{Name: "EtcdDatabaseSizeHigh", Severity: alert.Warning, For: 10 * time.Minute,
			Summary: "etcd database is larger than configured", Needs: alert.NeedsHealth,
			RunbookURL: alert.RunbookBase + "etcddatabasesizehigh",
			Expr:       fmt.Sprintf("etcd_mvcc_db_total_size_in_bytes{%s} > %d", alert.EtcdSelector, limit),
			Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
				var out []alert.Finding
				for _, m := range h.Members {
					if m.Reachable && m.DBSize > limit {
						out = append(out, alert.Finding{Labels: alert.MemberLabels(uint64(m.Member.ID), m.Name), Value: float64(m.DBSize),
							Description: fmt.Sprintf("database of %s is %d MiB, over %d MiB", m.Name, m.DBSize>>20, t.MaxDBSizeMB)})
					}
				}
				return out
			}})
	}
	return rules
}
