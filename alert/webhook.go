package alert

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"
)

// WebhookConfig configures a generic webhook that receives Alertmanager's outgoing
// webhook JSON (version 4), so receivers written for Alertmanager work unchanged.
type WebhookConfig struct {
	// Name of the receiver (default "webhook").
	Name string
	// URL receives a POST per notification. Required, http or https.
	URL string
	// Headers are added to each request (for example Authorization).
	Headers map[string]string
	// Receiver is the "receiver" field of the payload (default Name, else "etcd-monitor").
	Receiver string
	// ExternalURL is the "externalURL" field (a link back to the monitor), optional.
	ExternalURL string
	// Timeout bounds one attempt when Client is nil (default DefaultHTTPTimeout).
	Timeout time.Duration
	// Client sends the requests (default: http.Client with Timeout).
	Client *http.Client
}

// Webhook posts notifications in Alertmanager's webhook format.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
}

// NewWebhook validates cfg and returns the receiver.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if err := validURL("url", cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Receiver == "" {
		cfg.Receiver = orDefault(cfg.Name, "etcd-monitor")
	}
	cfg.Headers = maps.Clone(cfg.Headers)
	return &Webhook{cfg: cfg, client: httpClient(cfg.Client, cfg.Timeout)}, nil
}

// WebhookMessage is Alertmanager's webhook payload (version 4).
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// labelsOf returns the Alertmanager labels of a: its own plus alertname and severity.
func labelsOf(a Alert) map[string]string {
	l := make(map[string]string, len(a.Labels)+2)
	maps.Copy(l, a.Labels)
	l["alertname"] = a.Name
	l["severity"] = a.Severity.String()
	return l
}

// annotationsOf returns a's annotations: summary, description, runbook_url and any
// others the rule set.
func annotationsOf(a Alert) map[string]string {
	an := map[string]string{}
	maps.Copy(an, a.Annotations)
	if a.Summary != "" {
		an["summary"] = a.Summary
	}
	if a.Description != "" {
		an["description"] = a.Description
	}
	return an
}

// common returns the key/value pairs every map has.
func common(ms []map[string]string) map[string]string {
	out := map[string]string{}
	if len(ms) == 0 {
		return out
	}
	maps.Copy(out, ms[0])
	for _, m := range ms[1:] {
		for k, v := range out {
			if w, ok := m[k]; !ok || w != v {
				delete(out, k)
			}
		}
	}
	return out
}

// MessageFor returns the payload Send posts for n.
func (w *Webhook) MessageFor(n Notification) WebhookMessage {
	msg := WebhookMessage{Version: "4", GroupKey: n.GroupKey, Status: string(n.Status), Receiver: w.cfg.Receiver,
		GroupLabels: orEmpty(n.GroupLabels), ExternalURL: orDefault(w.cfg.ExternalURL, n.ExternalURL)}
	var ls, as []map[string]string
	for _, a := range n.Alerts {
		l, an := labelsOf(a), annotationsOf(a)
		ls, as = append(ls, l), append(as, an)
		msg.Alerts = append(msg.Alerts, WebhookAlert{Status: string(a.State), Labels: l, Annotations: an,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: orDefault(a.GeneratorURL, w.cfg.ExternalURL), Fingerprint: a.Fingerprint})
	}
	msg.CommonLabels, msg.CommonAnnotations = common(ls), common(as)
	return msg
}

// Message returns the payload Notify posts for a alone.
func (w *Webhook) Message(a Alert) WebhookMessage {
	return w.MessageFor(single(w.cfg.Receiver, a))
}

// Send posts n's message.
func (w *Webhook) Send(ctx context.Context, n Notification) error {
	return postJSON(ctx, w.client, w.cfg.URL, w.cfg.Headers, w.MessageFor(n))
}

// Notify posts a's message.
func (w *Webhook) Notify(ctx context.Context, a Alert) error {
	return postJSON(ctx, w.client, w.cfg.URL, w.cfg.Headers, w.Message(a))
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
