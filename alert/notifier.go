package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Notification is what a receiver gets: one group's alerts. Alerts lists the firing
// alerts first, then — when the receiver sends resolutions — the resolved ones.
type Notification struct {
	Receiver    string            `json:"receiver"`
	GroupKey    string            `json:"groupKey"`
	GroupLabels map[string]string `json:"groupLabels"`
	// Status is Firing while any alert of the group fires, Resolved otherwise.
	Status      State   `json:"status"`
	Alerts      []Alert `json:"alerts"`
	ExternalURL string  `json:"externalURL,omitempty"`
}

// Firing returns the notification's firing alerts.
func (n Notification) Firing() []Alert {
	var out []Alert
	for _, a := range n.Alerts {
		if a.State == Firing {
			out = append(out, a)
		}
	}
	return out
}

// Sender delivers notifications to one destination. Send is called from the receiver's
// delivery goroutines, at most a few at a time; an error makes the Manager retry
// (unless it is Permanent or an HTTPError that is not Temporary).
type Sender interface {
	Send(ctx context.Context, n Notification) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, n Notification) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, n Notification) error { return f(ctx, n) }

// Notifier delivers one alert to one channel: the interface of receivers written before
// grouping. The Manager calls it once per alert of a notification.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, a Alert) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, a Alert) error { return f(ctx, a) }

// notifierSender sends a notification to a Notifier one alert at a time.
type notifierSender struct{ n Notifier }

func (s notifierSender) Send(ctx context.Context, n Notification) error {
	for _, a := range n.Alerts {
		if err := s.n.Notify(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// single is the notification of one alert alone, for the Notify methods of the
// built-in receivers.
func single(receiver string, a Alert) Notification {
	return Notification{Receiver: receiver, GroupKey: "{}:" + a.Fingerprint,
		GroupLabels: map[string]string{"alertname": a.Name}, Status: a.State, Alerts: []Alert{a}}
}

// DefaultHTTPTimeout bounds one HTTP delivery attempt when the config sets no client.
const DefaultHTTPTimeout = 10 * time.Second

func httpClient(c *http.Client, timeout time.Duration) *http.Client {
	if c != nil {
		return c
	}
	if timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	return &http.Client{Timeout: timeout}
}

func validURL(field, raw string) error {
	if raw == "" {
		return fieldErr(field, "required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fieldErr(field, "not a URL: %v", redactURLText(err.Error(), raw))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(field, "%s is not an http(s) URL", RedactURL(raw))
	}
	return nil
}

// postJSON posts v as JSON and turns a non-2xx answer into an *HTTPError.
func postJSON(ctx context.Context, c *http.Client, u string, headers map[string]string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return Permanent(fmt.Errorf("alert: encode: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "etcd-monitor")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDelivery, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &HTTPError{
		StatusCode: resp.StatusCode,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:       strings.TrimSpace(string(msg)),
	}
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// integration is a built receiver: how to send, and what must never be shown.
type integration struct {
	sender  Sender
	secrets []string
	// maxRepeat caps the repeat interval (Alertmanager forgets an alert not re-sent
	// within its resolve_timeout); zero means no cap.
	maxRepeat time.Duration
}

// build turns a receiver's configuration into its integration.
func (r ReceiverConfig) build() (*integration, error) {
	switch r.Type {
	case TypeConsole:
		return nil, nil // built by the Manager, which has the logger
	case TypeWebhook:
		w, err := NewWebhook(WebhookConfig{Name: r.Name, URL: r.URL, Headers: r.Headers, Receiver: r.Name, Timeout: r.Timeout})
		if err != nil {
			return nil, err
		}
		return &integration{sender: w, secrets: urlSecrets(r.URL, r.Headers)}, nil
	case TypeSlack:
		s, err := NewSlack(SlackConfig{Name: r.Name, WebhookURL: r.URL, Channel: r.Channel, Timeout: r.Timeout})
		if err != nil {
			return nil, prefix("", renameField(err, "webhook_url", "url"))
		}
		return &integration{sender: s, secrets: urlSecrets(r.URL, nil)}, nil
	case TypePagerDuty:
		p, err := NewPagerDuty(PagerDutyConfig{Name: r.Name, RoutingKey: r.RoutingKey, URL: r.URL, Timeout: r.Timeout})
		if err != nil {
			return nil, err
		}
		return &integration{sender: p, secrets: append(urlSecrets(r.URL, nil), r.RoutingKey)}, nil
	case TypeEmail:
		e, err := NewEmail(EmailConfig{Name: r.Name, Addr: r.Addr, From: r.From, To: r.To, Username: r.Username,
			Password: r.Password, AllowPlaintext: r.AllowPlaintext, Timeout: r.Timeout})
		if err != nil {
			return nil, err
		}
		var secrets []string
		if r.Password != "" {
			secrets = append(secrets, r.Password)
		}
		return &integration{sender: e, secrets: secrets}, nil
	case TypeAlertmanager:
		a, err := NewAlertmanager(AlertmanagerConfig{Name: r.Name, URL: r.URL, Headers: r.Headers, Timeout: r.Timeout})
		if err != nil {
			return nil, err
		}
		return &integration{sender: a, secrets: urlSecrets(r.URL, r.Headers), maxRepeat: AlertmanagerResendInterval}, nil
	case "":
		return nil, fieldErr("type", "required: console, webhook, slack, pagerduty, email or alertmanager")
	}
	return nil, fieldErr("type", "unknown receiver type %q (want console, webhook, slack, pagerduty, email or alertmanager)", r.Type)
}

func renameField(err error, from, to string) error {
	if fe, ok := err.(*FieldError); ok && fe.Field == from {
		return &FieldError{Field: to, Reason: fe.Reason}
	}
	return err
}

// groupHash is a stable short hash of a receiver's group, for PagerDuty's dedup_key.
func groupHash(receiver, key string) string {
	h := sha256.Sum256([]byte(receiver + "\x00" + key))
	return fmt.Sprintf("%x", h[:16])
}

// hostOnly is used in error texts about an address.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}
