package alert

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// DefaultPagerDutyURL is the Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// PagerDutyConfig configures a PagerDuty Events API v2 integration.
type PagerDutyConfig struct {
	// Name of the notifier in the Manager (default "pagerduty").
	Name string
	// RoutingKey is the integration key of the service. Required (32 characters).
	RoutingKey string
	// URL is the events endpoint (default DefaultPagerDutyURL).
	URL string
	// Source is the payload's "source" (default "etcd-monitor").
	Source string
	// Client sends the requests (default: http.Client with DefaultHTTPTimeout).
	Client *http.Client
}

// PagerDuty triggers and resolves PagerDuty incidents, with the alert's fingerprint as
// dedup_key so a resolve closes the incident its trigger opened.
type PagerDuty struct {
	cfg    PagerDutyConfig
	client *http.Client
}

// NewPagerDuty validates cfg and returns the notifier.
func NewPagerDuty(cfg PagerDutyConfig) (*PagerDuty, error) {
	if len(cfg.RoutingKey) != 32 {
		return nil, fmt.Errorf("%w: pagerduty: routing key must be 32 characters, got %d", ErrInvalidNotifier, len(cfg.RoutingKey))
	}
	if cfg.URL == "" {
		cfg.URL = DefaultPagerDutyURL
	}
	if err := validURL("pagerduty", cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Source == "" {
		cfg.Source = "etcd-monitor"
	}
	return &PagerDuty{cfg: cfg, client: httpClient(cfg.Client)}, nil
}

// PagerDutyEvent is an Events API v2 event.
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"`
}

// PagerDutyPayload is the payload of a trigger event.
type PagerDutyPayload struct {
	Summary       string            `json:"summary"`
	Source        string            `json:"source"`
	Severity      string            `json:"severity"`
	Timestamp     string            `json:"timestamp"`
	Component     string            `json:"component"`
	Class         string            `json:"class"`
	CustomDetails map[string]string `json:"custom_details,omitempty"`
}

// Event returns the event Notify sends for a: trigger while firing, resolve once resolved.
func (p *PagerDuty) Event(a Alert) PagerDutyEvent {
	ev := PagerDutyEvent{RoutingKey: p.cfg.RoutingKey, DedupKey: a.Fingerprint, EventAction: "trigger"}
	if a.State == Resolved {
		ev.EventAction = "resolve"
		return ev
	}
	details := labelsOf(a)
	if a.Description != "" {
		details["description"] = a.Description
	}
	summary := a.Name + ": " + a.Summary
	if len(summary) > 1024 {
		summary = summary[:1024]
	}
	ev.Payload = &PagerDutyPayload{
		Summary:       summary,
		Source:        p.cfg.Source,
		Severity:      a.Severity.String(),
		Timestamp:     a.StartsAt.UTC().Format(time.RFC3339),
		Component:     "etcd",
		Class:         a.Name,
		CustomDetails: details,
	}
	return ev
}

// Notify sends a's event.
func (p *PagerDuty) Notify(ctx context.Context, a Alert) error {
	return postJSON(ctx, p.client, p.cfg.URL, nil, p.Event(a))
}
