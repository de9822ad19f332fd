package alert

import (
	"fmt"
	"maps"
	"time"

	"go.uber.org/zap"
)

// Option configures a Manager.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// Defaults, in one place.
const (
	// DefaultDedupWindow is how long a still-firing alert is not delivered again.
	DefaultDedupWindow = 5 * time.Minute
	// HistorySize is how many alert transitions and delivery attempts are kept.
	HistorySize = 1000
	// QueueSize is how many deliveries a notifier's queue holds.
	QueueSize = 1024
)

// Retry is the delivery retry policy.
type Retry struct {
	// Attempts is the total number of tries per delivery (default 5).
	Attempts int
	// MinBackoff and MaxBackoff bound the jittered exponential delay between tries
	// (default 100ms and 10s).
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a server's Retry-After is honoured (default 1m); zero
	// ignores Retry-After and uses the backoff.
	MaxRetryAfter time.Duration
}

// DefaultRetry returns the default retry policy.
func DefaultRetry() Retry {
	return Retry{Attempts: 5, MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxRetryAfter: time.Minute}
}

type namedNotifier struct {
	name string
	n    Notifier
}

type options struct {
	thresholds  Thresholds
	rules       []Rule
	rulesSet    bool
	extraRules  []Rule
	dedupWindow time.Duration
	retry       Retry
	notifiers   []namedNotifier
	errs        []error
	labels      map[string]string
	logger      *zap.Logger
}

func defaults() options {
	return options{
		thresholds:  DefaultThresholds(),
		dedupWindow: DefaultDedupWindow,
		retry:       DefaultRetry(),
		logger:      zap.NewNop(),
	}
}

func (o *options) validate() error {
	if len(o.errs) > 0 {
		return o.errs[0]
	}
	if err := o.thresholds.Validate(); err != nil {
		return err
	}
	switch {
	case o.dedupWindow <= 0:
		return fmt.Errorf("%w: dedup window %v must be positive", ErrInvalidOption, o.dedupWindow)
	case o.retry.Attempts < 1:
		return fmt.Errorf("%w: retry attempts %d must be at least 1", ErrInvalidOption, o.retry.Attempts)
	case o.retry.MinBackoff <= 0 || o.retry.MaxBackoff < o.retry.MinBackoff:
		return fmt.Errorf("%w: retry backoff [%v, %v] invalid", ErrInvalidOption, o.retry.MinBackoff, o.retry.MaxBackoff)
	case o.retry.MaxRetryAfter < 0:
		return fmt.Errorf("%w: max Retry-After %v negative", ErrInvalidOption, o.retry.MaxRetryAfter)
	case o.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidOption)
	}
	seen := map[string]bool{}
	for _, r := range o.ruleSet() {
		if r.Name == "" || r.Eval == nil {
			return fmt.Errorf("%w: rule %q needs a name and an Eval", ErrInvalidOption, r.Name)
		}
		if seen[r.Name] {
			return fmt.Errorf("%w: duplicate rule %q", ErrInvalidOption, r.Name)
		}
		seen[r.Name] = true
	}
	names := map[string]bool{}
	for _, n := range o.notifiers {
		if n.name == "" || n.n == nil {
			return fmt.Errorf("%w: notifier %q needs a name and an implementation", ErrInvalidNotifier, n.name)
		}
		if names[n.name] {
			return fmt.Errorf("%w: duplicate notifier name %q", ErrInvalidNotifier, n.name)
		}
		names[n.name] = true
	}
	return nil
}

func (o *options) ruleSet() []Rule {
	rules := o.rules
	if !o.rulesSet {
		rules = DefaultRules(o.thresholds)
	}
	return append(append([]Rule(nil), rules...), o.extraRules...)
}

// WithThresholds sets the thresholds of the default rules. Default DefaultThresholds().
func WithThresholds(t Thresholds) Option { return optionFunc(func(o *options) { o.thresholds = t }) }

// WithRules replaces the default rules with rules. Call DefaultRules to extend them.
func WithRules(rules ...Rule) Option {
	return optionFunc(func(o *options) { o.rules, o.rulesSet = append([]Rule(nil), rules...), true })
}

// WithExtraRules adds rules to the rule set (the defaults unless WithRules replaced them).
func WithExtraRules(rules ...Rule) Option {
	return optionFunc(func(o *options) { o.extraRules = append(o.extraRules, rules...) })
}

// WithDedupWindow sets how long a still-firing alert is not delivered again. Default 5m.
func WithDedupWindow(d time.Duration) Option {
	return optionFunc(func(o *options) { o.dedupWindow = d })
}

// WithRetry sets the delivery retry policy. Default DefaultRetry().
func WithRetry(r Retry) Option { return optionFunc(func(o *options) { o.retry = r }) }

// WithNotifier adds a notifier under a name unique within the Manager.
func WithNotifier(name string, n Notifier) Option {
	return optionFunc(func(o *options) { o.notifiers = append(o.notifiers, namedNotifier{name, n}) })
}

// WithConsole adds a notifier, named "console", that logs alerts to l.
func WithConsole(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: console: nil logger", ErrInvalidNotifier))
			return
		}
		o.notifiers = append(o.notifiers, namedNotifier{"console", NewConsole(l)})
	})
}

// WithWebhook adds an Alertmanager-compatible webhook notifier named cfg.Name or "webhook".
func WithWebhook(cfg WebhookConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewWebhook(cfg)
		o.add(orDefault(cfg.Name, "webhook"), n, err)
	})
}

// WithSlack adds a Slack notifier named cfg.Name or "slack".
func WithSlack(cfg SlackConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewSlack(cfg)
		o.add(orDefault(cfg.Name, "slack"), n, err)
	})
}

// WithPagerDuty adds a PagerDuty notifier named cfg.Name or "pagerduty".
func WithPagerDuty(cfg PagerDutyConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewPagerDuty(cfg)
		o.add(orDefault(cfg.Name, "pagerduty"), n, err)
	})
}

// WithEmail adds an email notifier named cfg.Name or "email".
func WithEmail(cfg EmailConfig) Option {
	return optionFunc(func(o *options) {
		n, err := NewEmail(cfg)
		o.add(orDefault(cfg.Name, "email"), n, err)
	})
}

// WithLabels adds constant labels (for example {"cluster": "prod"}) to every alert. They
// are part of the fingerprint and are sent to the notifiers; a rule's own label of the
// same name wins.
func WithLabels(labels map[string]string) Option {
	return optionFunc(func(o *options) { o.labels = maps.Clone(labels) })
}

// WithLogger sets the logger. Default zap.NewNop().
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

func (o *options) add(name string, n Notifier, err error) {
	if err != nil {
		o.errs = append(o.errs, err)
		return
	}
	o.notifiers = append(o.notifiers, namedNotifier{name, n})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
