package alert

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults of the root route, as in Alertmanager except group_wait (30s there), which
// has two defaults here: DefaultOutageGroupWait for the alerts that say the whole
// cluster is down (OutageAlerts), DefaultGroupWait for every other alert. A group_wait
// set on a route, or on a route above it, applies to every alert alike.
//
// Why: a page for a lost quorum or a cluster without a leader must arrive within one
// health interval plus 10 s, with margin. With 10 s for everything the page came at
// the next health check + 10 s + the delivery — at the bound's edge. The outage alerts
// need no wait to gather more alerts: the alerts of one check are evaluated together,
// a rolling restart (quorum kept) cannot raise them, and EtcdNoLeader waits out an
// election with its own for. Other alerts keep 10 s, so that alerts of one name raised
// by a few consecutive checks go out as one notification.
const (
	DefaultGroupWait       = 10 * time.Second
	DefaultOutageGroupWait = 2 * time.Second
	DefaultGroupInterval   = 5 * time.Minute
	DefaultRepeatInterval  = 4 * time.Hour
)

// OutageAlerts are the built-in alerts that mean the cluster as a whole cannot serve:
// their groups wait DefaultOutageGroupWait unless a route sets group_wait.
var OutageAlerts = []string{"EtcdClusterUnreachable", "EtcdInsufficientMembers", "EtcdNoLeader"}

// outageAlert reports whether an alert named name is one of OutageAlerts.
func outageAlert(name string) bool {
	for _, n := range OutageAlerts {
		if n == name {
			return true
		}
	}
	return false
}

// Config is the notification side of alerting — routes, receivers, inhibit rules —
// plus thresholds and rule overrides, with YAML tags so a daemon can embed it in its
// configuration file. The zero Config is valid: every alert goes to every receiver
// through DefaultRoute, with DefaultInhibitRules.
type Config struct {
	// Route is the root of the routing tree. Nil: DefaultRoute with every receiver on it.
	Route *Route `yaml:"route,omitempty" json:"route,omitempty"`
	// Receivers are the named destinations routes refer to.
	Receivers []ReceiverConfig `yaml:"receivers,omitempty" json:"receivers,omitempty"`
	// InhibitRules mute target alerts while a source alert fires. Nil means
	// DefaultInhibitRules; an empty, non-nil list means none.
	InhibitRules []InhibitRule `yaml:"inhibit_rules,omitempty" json:"inhibit_rules,omitempty"`
	// Thresholds parameterise the built-in rules of every cluster (default
	// DefaultThresholds; YAML decoding starts from the defaults).
	Thresholds *Thresholds `yaml:"thresholds,omitempty" json:"thresholds,omitempty"`
	// ClusterThresholds override Thresholds for the named clusters.
	ClusterThresholds map[string]Thresholds `yaml:"cluster_thresholds,omitempty" json:"cluster_thresholds,omitempty"`
	// Rules override the for, keep_firing_for or enablement of rules, by alert name.
	Rules map[string]RuleOverride `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// Route is a node of the routing tree, as in Alertmanager: an alert goes down the first
// child whose matchers match it (and on to later siblings while the matched child has
// Continue), else stays at this node and goes to its Receiver. Zero durations inherit
// the parent's.
type Route struct {
	Receiver string `yaml:"receiver,omitempty" json:"receiver,omitempty"`
	// GroupBy lists the labels alerts are grouped by; ["..."] groups by every label.
	// Default (root) [cluster, alertname].
	GroupBy  []string `yaml:"group_by,omitempty" json:"group_by,omitempty"`
	Matchers Matchers `yaml:"matchers,omitempty" json:"matchers,omitempty"`
	Continue bool     `yaml:"continue,omitempty" json:"continue,omitempty"`
	// GroupWait is how long a new group waits for more alerts before its first
	// notification, counted from the start of the evaluation (health check) that raised
	// its first alert. Zero inherits the parent's; where no route on the path sets it,
	// the default is DefaultOutageGroupWait (2s) for OutageAlerts and DefaultGroupWait
	// (10s) for the others; a group still waiting is notified at the earliest wait of
	// its alerts.
	GroupWait time.Duration `yaml:"group_wait,omitempty" json:"group_wait,omitempty"`
	// GroupInterval is how long a group waits before notifying about alerts added to or
	// resolved in it (root default 5m).
	GroupInterval time.Duration `yaml:"group_interval,omitempty" json:"group_interval,omitempty"`
	// RepeatInterval is how long before an unchanged, still-firing group is notified
	// again (root default 4h).
	RepeatInterval time.Duration `yaml:"repeat_interval,omitempty" json:"repeat_interval,omitempty"`
	Routes         []*Route      `yaml:"routes,omitempty" json:"routes,omitempty"`
}

// Receiver types.
const (
	TypeConsole      = "console"
	TypeWebhook      = "webhook"
	TypeSlack        = "slack"
	TypePagerDuty    = "pagerduty"
	TypeEmail        = "email"
	TypeAlertmanager = "alertmanager"
)

// ReceiverConfig is one named receiver: one integration, chosen by Type.
type ReceiverConfig struct {
	Name string `yaml:"name" json:"name"`
	// Type is console, webhook, slack, pagerduty, email or alertmanager.
	Type string `yaml:"type" json:"type"`
	// SendResolved sends resolutions too (default true).
	SendResolved *bool `yaml:"send_resolved,omitempty" json:"send_resolved,omitempty"`
	// URL is the webhook's URL, Slack's incoming-webhook URL, PagerDuty's events URL
	// (optional) or Alertmanager's base URL (http://am:9093).
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Headers are added to webhook and alertmanager requests.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Channel overrides a Slack webhook's channel.
	Channel string `yaml:"channel,omitempty" json:"channel,omitempty"`
	// RoutingKey is PagerDuty's 32-character integration key.
	RoutingKey string `yaml:"routing_key,omitempty" json:"routing_key,omitempty"`
	// Email: server host:port, sender, recipients, PLAIN credentials.
	Addr           string   `yaml:"addr,omitempty" json:"addr,omitempty"`
	From           string   `yaml:"from,omitempty" json:"from,omitempty"`
	To             []string `yaml:"to,omitempty" json:"to,omitempty"`
	Username       string   `yaml:"username,omitempty" json:"username,omitempty"`
	Password       string   `yaml:"password,omitempty" json:"-"`
	AllowPlaintext bool     `yaml:"allow_plaintext,omitempty" json:"allow_plaintext,omitempty"`
	// Timeout bounds one delivery attempt (default 10s).
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// InhibitRule mutes every alert matching TargetMatchers while an alert matching
// SourceMatchers fires with the same values of the Equal labels.
type InhibitRule struct {
	SourceMatchers Matchers `yaml:"source_matchers" json:"source_matchers"`
	TargetMatchers Matchers `yaml:"target_matchers" json:"target_matchers"`
	Equal          []string `yaml:"equal,omitempty" json:"equal,omitempty"`
}

// RuleOverride changes a rule's timing or turns it off.
type RuleOverride struct {
	For           *time.Duration `yaml:"for,omitempty" json:"for,omitempty"`
	KeepFiringFor *time.Duration `yaml:"keep_firing_for,omitempty" json:"keep_firing_for,omitempty"`
	Disabled      bool           `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

// DefaultRoute returns the root route: group by cluster and alert name, interval 5 m,
// repeat 4 h, and group_wait left to its defaults (2 s for OutageAlerts, 10 s for the
// others).
func DefaultRoute() *Route {
	return &Route{GroupBy: []string{"cluster", "alertname"},
		GroupInterval: DefaultGroupInterval, RepeatInterval: DefaultRepeatInterval}
}

// DefaultInhibitRules returns the default inhibitions:
//   - a lost quorum or an unreachable cluster mutes the per-member alerts (those with a
//     member_id label) of the same cluster;
//   - an unreachable cluster mutes EtcdInsufficientMembers of the same cluster;
//   - a critical alert mutes the warning of the same name, cluster and member;
//   - a member that is down mutes its own EtcdMetricsUnavailable.
func DefaultInhibitRules() []InhibitRule {
	return []InhibitRule{
		{SourceMatchers: MustParseMatchers(`alertname="EtcdMembersDown"`),
			TargetMatchers: MustParseMatchers(`alertname="EtcdMetricsUnavailable"`), Equal: []string{"cluster", "member_id"}},
		{SourceMatchers: MustParseMatchers(`alertname=~"EtcdInsufficientMembers|EtcdClusterUnreachable"`),
			TargetMatchers: MustParseMatchers(`member_id=~".+"`), Equal: []string{"cluster"}},
		{SourceMatchers: MustParseMatchers(`alertname="EtcdClusterUnreachable"`),
			TargetMatchers: MustParseMatchers(`alertname="EtcdInsufficientMembers"`), Equal: []string{"cluster"}},
		{SourceMatchers: MustParseMatchers(`severity="critical"`), TargetMatchers: MustParseMatchers(`severity="warning"`),
			Equal: []string{"cluster", "alertname", "member_id"}},
	}
}

// Validate reports the first invalid value, as a *FieldError naming its path.
func (c Config) Validate() error {
	_, err := compileConfig(c, nil)
	return err
}

// route is a compiled Route.
type route struct {
	path          string
	receiver      string
	groupBy       []string
	groupAll      bool
	matchers      Matchers
	cont          bool
	groupWait     time.Duration
	groupWaitSet  bool // GroupWait given on this route or one above it
	groupInterval time.Duration
	repeat        time.Duration
	repeatSet     bool // RepeatInterval given on this route
	routes        []*route
}

// match returns the routes an alert with labels ends up at, Alertmanager's way.
func (r *route) match(labels map[string]string) []*route {
	if !r.matchers.Matches(labels) {
		return nil
	}
	var all []*route
	for _, c := range r.routes {
		m := c.match(labels)
		all = append(all, m...)
		if m != nil && !c.cont {
			break
		}
	}
	if len(all) == 0 {
		all = []*route{r}
	}
	return all
}

type compiled struct {
	root     *route
	inhibits []InhibitRule
}

// compileConfig checks c and builds the routing tree. legacy names receivers added by
// options (WithWebhook, ...): they hang off the root with continue, so they get every
// alert as they did before routing existed.
func compileConfig(c Config, legacy []string) (*compiled, error) {
	names := map[string]bool{}
	for i, r := range c.Receivers {
		if err := r.validate(); err != nil {
			return nil, prefix(fmt.Sprintf("receivers[%d]", i), err)
		}
		if names[r.Name] {
			return nil, fieldErr(fmt.Sprintf("receivers[%d].name", i), "duplicate receiver %q", r.Name)
		}
		names[r.Name] = true
	}
	for _, n := range legacy {
		if names[n] {
			return nil, fieldErr("receivers", "receiver %q is configured twice", n)
		}
		names[n] = true
	}
	root := c.Route
	if root == nil {
		root = DefaultRoute()
		for _, r := range c.Receivers {
			root.Routes = append(root.Routes, &Route{Receiver: r.Name, Continue: true})
		}
	} else if len(root.Matchers) > 0 {
		return nil, fieldErr("route.matchers", "the root route matches every alert and takes no matchers")
	}
	// Receivers added by options that the tree does not name get every alert.
	used := map[string]bool{}
	var walk func(*Route)
	walk = func(r *Route) {
		if r == nil {
			return
		}
		used[r.Receiver] = true
		for _, c := range r.Routes {
			walk(c)
		}
	}
	walk(root)
	var lr []*Route
	for _, n := range legacy {
		if !used[n] {
			lr = append(lr, &Route{Receiver: n, Continue: true})
		}
	}
	cr := *root
	cr.Routes = append(lr, root.Routes...)
	def := route{groupBy: []string{"cluster", "alertname"}, groupWait: DefaultGroupWait,
		groupInterval: DefaultGroupInterval, repeat: DefaultRepeatInterval}
	out, err := compileRoute(&cr, &def, "route", names)
	if err != nil {
		return nil, err
	}
	inhibits := c.InhibitRules
	if inhibits == nil {
		inhibits = DefaultInhibitRules()
	}
	cin := make([]InhibitRule, len(inhibits))
	for i, ir := range inhibits {
		f := fmt.Sprintf("inhibit_rules[%d]", i)
		src, err := ir.SourceMatchers.compile(f + ".source_matchers")
		if err != nil {
			return nil, err
		}
		tgt, err := ir.TargetMatchers.compile(f + ".target_matchers")
		if err != nil {
			return nil, err
		}
		if len(src) == 0 || len(tgt) == 0 {
			return nil, fieldErr(f, "needs source_matchers and target_matchers")
		}
		for j, l := range ir.Equal {
			if !labelName.MatchString(l) {
				return nil, fieldErr(fmt.Sprintf("%s.equal[%d]", f, j), "%q is not a label name", l)
			}
		}
		cin[i] = InhibitRule{SourceMatchers: src, TargetMatchers: tgt, Equal: slices.Clone(ir.Equal)}
	}
	if c.Thresholds != nil {
		if err := c.Thresholds.Validate(); err != nil {
			return nil, prefix("thresholds", err)
		}
	}
	for name, t := range c.ClusterThresholds {
		if err := t.Validate(); err != nil {
			return nil, prefix(fmt.Sprintf("cluster_thresholds.%s", name), err)
		}
	}
	for name, o := range c.Rules {
		if o.For != nil && *o.For < 0 {
			return nil, fieldErr(fmt.Sprintf("rules.%s.for", name), "negative duration %v", *o.For)
		}
		if o.KeepFiringFor != nil && *o.KeepFiringFor < 0 {
			return nil, fieldErr(fmt.Sprintf("rules.%s.keep_firing_for", name), "negative duration %v", *o.KeepFiringFor)
		}
	}
	return &compiled{root: out, inhibits: cin}, nil
}

func compileRoute(r *Route, parent *route, path string, receivers map[string]bool) (*route, error) {
	if r == nil {
		return nil, fieldErr(path, "empty route")
	}
	out := &route{path: path, receiver: r.Receiver, cont: r.Continue, groupBy: parent.groupBy, groupAll: parent.groupAll,
		groupWait: parent.groupWait, groupWaitSet: parent.groupWaitSet || r.GroupWait > 0,
		groupInterval: parent.groupInterval, repeat: parent.repeat, repeatSet: r.RepeatInterval > 0}
	if r.Receiver == "" {
		out.receiver = parent.receiver
	} else if !receivers[r.Receiver] {
		return nil, fieldErr(path+".receiver", "no receiver named %q", r.Receiver)
	}
	ms, err := r.Matchers.compile(path + ".matchers")
	if err != nil {
		return nil, err
	}
	out.matchers = ms
	if r.GroupBy != nil {
		out.groupBy, out.groupAll = nil, false
		for i, l := range r.GroupBy {
			switch {
			case l == "...":
				if len(r.GroupBy) != 1 {
					return nil, fieldErr(fmt.Sprintf("%s.group_by[%d]", path, i), `"..." must be alone`)
				}
				out.groupAll = true
			case !labelName.MatchString(l):
				return nil, fieldErr(fmt.Sprintf("%s.group_by[%d]", path, i), "%q is not a label name", l)
			default:
				out.groupBy = append(out.groupBy, l)
			}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		dst  *time.Duration
	}{{"group_wait", r.GroupWait, &out.groupWait}, {"group_interval", r.GroupInterval, &out.groupInterval}, {"repeat_interval", r.RepeatInterval, &out.repeat}} {
		if d.v < 0 {
			return nil, fieldErr(path+"."+d.name, "negative duration %v", d.v)
		}
		if d.v > 0 {
			*d.dst = d.v
		}
	}
	for i, c := range r.Routes {
		cr, err := compileRoute(c, out, fmt.Sprintf("%s.routes[%d]", path, i), receivers)
		if err != nil {
			return nil, err
		}
		out.routes = append(out.routes, cr)
	}
	return out, nil
}

// MarshalJSON writes the receiver with its secrets redacted — URL path and query,
// header values, routing key, password — so a configuration can be shown safely.
func (r ReceiverConfig) MarshalJSON() ([]byte, error) {
	type plain ReceiverConfig
	p := plain(r)
	if p.URL != "" {
		p.URL = RedactURL(p.URL)
	}
	if len(p.Headers) > 0 {
		h := make(map[string]string, len(p.Headers))
		for k := range p.Headers {
			h[k] = redacted
		}
		p.Headers = h
	}
	if p.RoutingKey != "" {
		p.RoutingKey = redacted
	}
	return json.Marshal(p)
}

func (r ReceiverConfig) validate() error {
	if r.Name == "" {
		return fieldErr("name", "required")
	}
	if r.Timeout < 0 {
		return fieldErr("timeout", "negative duration %v", r.Timeout)
	}
	_, err := r.build()
	return err
}

// sendResolved is SendResolved with its default.
func (r ReceiverConfig) sendResolved() bool { return r.SendResolved == nil || *r.SendResolved }

// UnmarshalYAML starts from DefaultThresholds, so a YAML block sets only what it names.
func (t *Thresholds) UnmarshalYAML(n *yaml.Node) error {
	type plain Thresholds
	p := plain(DefaultThresholds())
	if err := n.Decode(&p); err != nil {
		return err
	}
	*t = Thresholds(p)
	return nil
}
