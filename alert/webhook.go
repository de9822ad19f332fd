package alert

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"time"
)

// WebhookConfig configures a generic webhook that receives the Alertmanager v4 webhook
// JSON, so receivers written for Alertmanager work unchanged.
type WebhookConfig struct {
	// Name of the notifier in the Manager (default "webhook").
	Name string
	// URL receives a POST per alert. Required, http or https.
	URL string
	// Headers are added to each request (for example Authorization).
	Headers map[string]string
	// Receiver is the "receiver" field of the payload (default "etcd-monitor").
	Receiver string
	// ExternalURL is the "externalURL" field (a link back to the monitor), optional.
	ExternalURL string
	// Client sends the requests (default: http.Client with DefaultHTTPTimeout).
	Client *http.Client
}

// Webhook posts alerts in the Alertmanager webhook format.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
}

// NewWebhook validates cfg and returns the notifier.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if err := validURL("webhook", cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Receiver == "" {
		cfg.Receiver = "etcd-monitor"
	}
	cfg.Headers = maps.Clone(cfg.Headers)
	return &Webhook{cfg: cfg, client: httpClient(cfg.Client)}, nil
}

// WebhookMessage is the Alertmanager v4 webhook payload.
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

func annotationsOf(a Alert) map[string]string {
	an := map[string]string{"summary": a.Summary}
	if a.Description != "" {
		an["description"] = a.Description
	}
	return an
}

// Message returns the payload Notify posts for a.
func (w *Webhook) Message(a Alert) WebhookMessage {
	labels := labelsOf(a)
	ann := annotationsOf(a)
	return WebhookMessage{
		Version:           "4",
		GroupKey:          fmt.Sprintf("{}:{alertname=%q, fingerprint=%q}", a.Name, a.Fingerprint),
		Status:            string(a.State),
		Receiver:          w.cfg.Receiver,
		GroupLabels:       map[string]string{"alertname": a.Name},
		CommonLabels:      labels,
		CommonAnnotations: ann,
		ExternalURL:       w.cfg.ExternalURL,
		Alerts: []WebhookAlert{{
			Status:       string(a.State),
			Labels:       labels,
			Annotations:  ann,
			StartsAt:     a.StartsAt,
			EndsAt:       a.EndsAt,
			GeneratorURL: w.cfg.ExternalURL,
			Fingerprint:  a.Fingerprint,
		}},
	}
}

// Notify posts a's message.
func (w *Webhook) Notify(ctx context.Context, a Alert) error {
	return postJSON(ctx, w.client, w.cfg.URL, w.cfg.Headers, w.Message(a))
}
