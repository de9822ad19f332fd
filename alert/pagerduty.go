package alert

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DefaultPagerDutyURL is the Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// PagerDutyConfig configures a PagerDuty Events API v2 integration.
type PagerDutyConfig struct {
	// Name of the receiver (default "pagerduty").
	Name string
	// RoutingKey is the integration key of the service. Required (32 characters); a
	// secret, never logged.
	RoutingKey string
	// URL is the events endpoint (default DefaultPagerDutyURL).
	URL string
	// Source is the payload's "source" (default "etcd-monitor").
	Source string
	// Timeout bounds one attempt when Client is nil (default DefaultHTTPTimeout).
	Timeout time.Duration
	// Client sends the requests (default: http.Client with Timeout).
	Client *http.Client
}

// PagerDuty triggers and resolves PagerDuty incidents: one incident per group, whose
// dedup_key is a hash of the receiver and group key, so a resolve closes the incident
// its trigger opened.
type PagerDuty struct {
	cfg    PagerDutyConfig
	client *http.Client
}

// NewPagerDuty validates cfg and returns the receiver.
func NewPagerDuty(cfg PagerDutyConfig) (*PagerDuty, error) {
	if len(cfg.RoutingKey) != 32 {
		return nil, fieldErr("routing_key", "must be 32 characters, got %d", len(cfg.RoutingKey))
	}
	if cfg.URL == "" {
		cfg.URL = DefaultPagerDutyURL
	}
	if err := validURL("url", cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Source == "" {
		cfg.Source = "etcd-monitor"
	}
	return &PagerDuty{cfg: cfg, client: httpClient(cfg.Client, cfg.Timeout)}, nil
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

// EventFor returns the event Send sends for n: trigger while any alert fires, resolve
// once all are resolved.
func (p *PagerDuty) EventFor(n Notification) PagerDutyEvent {
	ev := PagerDutyEvent{RoutingKey: p.cfg.RoutingKey, DedupKey: groupHash(n.Receiver, n.GroupKey), EventAction: "trigger"}
	firing := n.Firing()
	if len(firing) == 0 {
		ev.EventAction = "resolve"
		return ev
	}
	top := firing[0]
	for _, a := range firing {
		if a.Severity > top.Severity {
			top = a
		}
	}
	details := map[string]string{"firing": fmt.Sprint(len(firing))}
	for k, v := range n.GroupLabels {
		details[k] = v
	}
	var lines []string
	for _, a := range firing {
		line := a.Name
		if m := a.Labels["member"]; m != "" {
			line += " member " + m
		}
		if a.Description != "" {
			line += ": " + a.Description
		}
		lines = append(lines, line)
	}
	details["alerts"] = strings.Join(lines, "\n")
	if rb := top.Annotations["runbook_url"]; rb != "" {
		details["runbook_url"] = rb
	}
	summary := top.Name + ": " + top.Summary
	if c := n.GroupLabels["cluster"]; c != "" {
		summary = "[" + c + "] " + summary
	}
	if len(firing) > 1 {
		summary += fmt.Sprintf(" (%d alerts)", len(firing))
	}
	summary = truncate(summary, 1024) // PagerDuty's limit
	ev.Payload = &PagerDutyPayload{Summary: summary, Source: p.cfg.Source, Severity: top.Severity.String(),
		Timestamp: top.StartsAt.UTC().Format(time.RFC3339), Component: "etcd", Class: top.Name, CustomDetails: details}
	return ev
}

// Event returns the event Notify sends for a alone; its dedup_key is a's fingerprint.
func (p *PagerDuty) Event(a Alert) PagerDutyEvent {
	ev := p.EventFor(single(p.cfg.Name, a))
	ev.DedupKey = a.Fingerprint
	return ev
}

// Send sends n's event.
func (p *PagerDuty) Send(ctx context.Context, n Notification) error {
	return postJSON(ctx, p.client, p.cfg.URL, nil, p.EventFor(n))
}

// Notify sends a's event.
func (p *PagerDuty) Notify(ctx context.Context, a Alert) error {
	return postJSON(ctx, p.client, p.cfg.URL, nil, p.Event(a))
}
