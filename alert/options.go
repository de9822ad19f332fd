package alert

import (
	"fmt"
	"maps"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// Option configures a Manager.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// Defaults, in one place.
const (
	// HistorySize is how many alert transitions and delivery attempts are kept in memory.
	HistorySize = 1000
	// QueueSize is how many notifications a receiver's queue holds.
	QueueSize = 1024
	// DefaultShutdownTimeout bounds how long Close waits for queued notifications.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultParallel is how many notifications one receiver sends at once.
	DefaultParallel = 4
)

// DefaultDedupWindow is kept for compatibility: WithDedupWindow sets the root route's
// repeat interval, whose default is DefaultRepeatInterval.
const DefaultDedupWindow = DefaultRepeatInterval

// Retry is the delivery retry policy.
type Retry struct {
	// Attempts is the total number of tries per notification (default 5).
	Attempts int
	// MinBackoff and MaxBackoff bound the jittered exponential delay between tries
	// (default 100ms and 10s).
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a server's Retry-After is honoured (default 1m); zero
	// ignores Retry-After and uses the backoff. A notification waiting to retry never
	// holds up the receiver's other notifications.
	MaxRetryAfter time.Duration
}

// DefaultRetry returns the default retry policy.
func DefaultRetry() Retry {
	return Retry{Attempts: 5, MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxRetryAfter: time.Minute}
}

// namedReceiver is a receiver added by an option rather than by Config.Receivers.
type namedReceiver struct {
	name         string
	integ        *integration
	sendResolved bool
	console      bool
}

type options struct {
	thresholds        Thresholds
	clusterThresholds map[string]Thresholds
	rules             []Rule
	rulesSet          bool
	extraRules        []Rule
	repeat            time.Duration
	retry             Retry
	receivers         []namedReceiver
	config            Config
	configSet         bool
	store             store.Store
	registerer        prometheus.Registerer
	shutdownTimeout   time.Duration
	externalURL       string
	errs              []error
	labels            map[string]string
	logger            *zap.Logger
}

func defaults() options {
	return options{
		thresholds:      DefaultThresholds(),
		retry:           DefaultRetry(),
		shutdownTimeout: DefaultShutdownTimeout,
		logger:          zap.NewNop(),
	}
}

func (o *options) validate() error {
	if len(o.errs) > 0 {
		return o.errs[0]
	}
	if err := o.thresholds.Validate(); err != nil {
		return prefix("thresholds", err)
	}
	for c, t := range o.clusterThresholds {
		if err := t.Validate(); err != nil {
			return prefix("cluster_thresholds."+c, err)
		}
	}
	switch {
	case o.repeat < 0:
		return fieldErr("dedup_window", "negative duration %v", o.repeat)
	case o.retry.Attempts < 1:
		return fieldErr("retry.attempts", "%d must be at least 1", o.retry.Attempts)
	case o.retry.MinBackoff <= 0 || o.retry.MaxBackoff < o.retry.MinBackoff:
		return fieldErr("retry.backoff", "[%v, %v] invalid", o.retry.MinBackoff, o.retry.MaxBackoff)
	case o.retry.MaxRetryAfter < 0:
		return fieldErr("retry.max_retry_after", "negative duration %v", o.retry.MaxRetryAfter)
	case o.logger == nil:
		return fieldErr("logger", "nil")
	case o.shutdownTimeout <= 0:
		return fieldErr("shutdown_timeout", "%v must be positive", o.shutdownTimeout)
	}
	seen := map[string]bool{}
	for i, r := range o.ruleSet(o.thresholds) {
		f := fmt.Sprintf("rules[%d]", i)
		if r.Name == "" || (r.Eval == nil && r.Check == nil) {
			return fieldErr(f, "rule %q needs a name and an Eval or Check", r.Name)
		}
		if r.For < 0 || r.KeepFiringFor < 0 {
			return fieldErr(f, "rule %q has a negative for or keep_firing_for", r.Name)
		}
		if k := ruleKey(r); seen[k] {
			return fieldErr(f, "duplicate rule %q of severity %s", r.Name, r.Severity)
		}
		seen[ruleKey(r)] = true
	}
	names := map[string]bool{}
	for _, n := range o.receivers {
		if n.name == "" || (n.integ == nil && !n.console) {
			return fieldErr("receivers", "receiver %q needs a name and an implementation", n.name)
		}
		if names[n.name] {
			return fieldErr("receivers", "duplicate receiver name %q", n.name)
		}
		names[n.name] = true
	}
	return nil
}

func ruleKey(r Rule) string { return r.Name + "/" + r.Severity.String() }

func (o *options) ruleSet(t Thresholds) []Rule {
	rules := o.rules
	if !o.rulesSet {
		rules = DefaultRules(t)
	}
	return append(append([]Rule(nil), rules...), o.extraRules...)
}

// WithConfig sets routes, receivers, inhibit rules, thresholds and rule overrides, as
// a daemon reads them from YAML. Receivers added by other options (WithWebhook, ...)
// are added to its receivers and get every alert.
func WithConfig(c Config) Option {
	return optionFunc(func(o *options) {
		o.config, o.configSet = c, true
		if c.Thresholds != nil {
			o.thresholds = *c.Thresholds
		}
		if c.ClusterThresholds != nil {
			o.clusterThresholds = maps.Clone(c.ClusterThresholds)
		}
	})
}

// WithThresholds sets the thresholds of the default rules. Default DefaultThresholds().
func WithThresholds(t Thresholds) Option { return optionFunc(func(o *options) { o.thresholds = t }) }

// WithClusterThresholds sets the thresholds of the default rules for one cluster (see
// EvaluateCluster).
func WithClusterThresholds(cluster string, t Thresholds) Option {
	return optionFunc(func(o *options) {
		if o.clusterThresholds == nil {
			o.clusterThresholds = map[string]Thresholds{}
		}
		o.clusterThresholds[cluster] = t
	})
}

// WithRules replaces the default rules with rules. Call DefaultRules to extend them.
func WithRules(rules ...Rule) Option {
	return optionFunc(func(o *options) { o.rules, o.rulesSet = append([]Rule(nil), rules...), true })
}

// WithExtraRules adds rules to the rule set (the defaults unless WithRules replaced them).
func WithExtraRules(rules ...Rule) Option {
	return optionFunc(func(o *options) { o.extraRules = append(o.extraRules, rules...) })
}

// WithDedupWindow sets the root route's repeat interval: how long before a
// still-firing, unchanged group is notified again. Kept for compatibility; prefer
// Config.Route.RepeatInterval. Default DefaultRepeatInterval (4h).
func WithDedupWindow(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, fieldErr("dedup_window", "%v must be positive", d))
			return
		}
		o.repeat = d
	})
}

// WithRetry sets the delivery retry policy. Default DefaultRetry().
func WithRetry(r Retry) Option { return optionFunc(func(o *options) { o.retry = r }) }

// WithReceiver adds a receiver under a name unique within the Manager. Routes name it;
// without a Config route it gets every alert.
func WithReceiver(name string, s Sender, sendResolved bool) Option {
	return optionFunc(func(o *options) {
		if s == nil {
			o.errs = append(o.errs, fieldErr("receivers", "receiver %q: nil Sender", name))
			return
		}
		o.receivers = append(o.receivers, namedReceiver{name: name, integ: &integration{sender: s}, sendResolved: sendResolved})
	})
}

// WithNotifier adds a receiver that gets each alert of a notification through n.
func WithNotifier(name string, n Notifier) Option {
	return optionFunc(func(o *options) {
		if n == nil {
			o.errs = append(o.errs, fieldErr("receivers", "notifier %q: nil Notifier", name))
			return
		}
		o.receivers = append(o.receivers, namedReceiver{name: name, integ: &integration{sender: notifierSender{n}}, sendResolved: true})
	})
}

// WithConsole adds a receiver, named "console", that logs alerts to l.
func WithConsole(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l == nil {
			o.errs = append(o.errs, fieldErr("console", "nil logger"))
			return
		}
		o.receivers = append(o.receivers, namedReceiver{name: "console", integ: &integration{sender: NewConsole(l)}, sendResolved: true})
	})
}

// WithWebhook adds a webhook receiver named cfg.Name or "webhook".
func WithWebhook(cfg WebhookConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewWebhook(cfg)
		o.add(orDefault(cfg.Name, "webhook"), n, err, urlSecrets(cfg.URL, cfg.Headers))
	})
}

// WithSlack adds a Slack receiver named cfg.Name or "slack".
func WithSlack(cfg SlackConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewSlack(cfg)
		o.add(orDefault(cfg.Name, "slack"), n, err, urlSecrets(cfg.WebhookURL, nil))
	})
}

// WithPagerDuty adds a PagerDuty receiver named cfg.Name or "pagerduty".
func WithPagerDuty(cfg PagerDutyConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewPagerDuty(cfg)
		o.add(orDefault(cfg.Name, "pagerduty"), n, err, append(urlSecrets(cfg.URL, nil), cfg.RoutingKey))
	})
}

// WithEmail adds an email receiver named cfg.Name or "email".
func WithEmail(cfg EmailConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewEmail(cfg)
		var secrets []string
		if cfg.Password != "" {
			secrets = append(secrets, cfg.Password)
		}
		o.add(orDefault(cfg.Name, "email"), n, err, secrets)
	})
}

// WithAlertmanager adds an Alertmanager receiver named cfg.Name or "alertmanager".
func WithAlertmanager(cfg AlertmanagerConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewAlertmanager(cfg)
		name := orDefault(cfg.Name, "alertmanager")
		o.add(name, n, err, urlSecrets(cfg.URL, cfg.Headers))
		if err == nil {
			o.receivers[len(o.receivers)-1].integ.maxRepeat = AlertmanagerResendInterval
		}
	})
}

// WithStore keeps alert state, the notification log and silences in s, so that a
// restart neither re-sends what was sent nor forgets a resolve. s stays the caller's
// to close, after the Manager. Default: an in-memory store.
func WithStore(s store.Store) Option {
	return optionFunc(func(o *options) {
		if s == nil {
			o.errs = append(o.errs, fieldErr("store", "nil"))
			return
		}
		o.store = s
	})
}

// WithRegisterer registers etcd_monitor_notifications_total{receiver,result} with r
// (and unregisters it at Close). The global registry is never used.
func WithRegisterer(r prometheus.Registerer) Option {
	return optionFunc(func(o *options) {
		if r == nil {
			o.errs = append(o.errs, fieldErr("registerer", "nil"))
			return
		}
		o.registerer = r
	})
}

// WithShutdownTimeout bounds how long Close waits for queued notifications (default
// 10s).
func WithShutdownTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.shutdownTimeout = d })
}

// WithExternalURL sets the link back to the monitor sent as generatorURL and
// externalURL.
func WithExternalURL(u string) Option {
	return optionFunc(func(o *options) {
		if err := validURL("external_url", u); err != nil {
			o.errs = append(o.errs, err)
			return
		}
		o.externalURL = u
	})
}

// WithLabels adds constant labels (for example {"cluster": "prod"}) to every alert. They
// are part of the fingerprint and are sent to the receivers; a rule's own label of the
// same name wins, and EvaluateCluster's cluster wins over a "cluster" label here.
func WithLabels(labels map[string]string) Option {
	return optionFunc(func(o *options) { o.labels = maps.Clone(labels) })
}

// WithLogger sets the logger. Default zap.NewNop(). Secrets are redacted from every
// line the Manager logs.
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

func (o *options) add(name string, s Sender, err error, secrets []string) {
	if err != nil {
		o.errs = append(o.errs, prefix(name, err))
		return
	}
	o.receivers = append(o.receivers, namedReceiver{name: name, integ: &integration{sender: s, secrets: secrets}, sendResolved: true})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
