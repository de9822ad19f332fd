package alert

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AlertmanagerResendInterval is how often an alertmanager receiver re-sends firing
// alerts, whatever the route's repeat_interval: Alertmanager resolves an alert it has
// not heard of for AlertmanagerEndsAfter. Prometheus re-sends every minute too.
const AlertmanagerResendInterval = time.Minute

// AlertmanagerEndsAfter is the endsAt given to firing alerts: if etcd-monitor stops
// sending, Alertmanager resolves them then.
const AlertmanagerEndsAfter = 5 * time.Minute

// AlertmanagerConfig configures an Alertmanager receiver: alerts are posted to
// Alertmanager's /api/v2/alerts, which groups, routes and notifies them itself.
type AlertmanagerConfig struct {
	// Name of the receiver (default "alertmanager").
	Name string
	// URL is Alertmanager's base URL, such as http://alertmanager:9093 (a path prefix is
	// kept). Required.
	URL string
	// Headers are added to each request (for example Authorization).
	Headers map[string]string
	// Timeout bounds one attempt when Client is nil (default DefaultHTTPTimeout).
	Timeout time.Duration
	// Client sends the requests (default: http.Client with Timeout).
	Client *http.Client
}

// Alertmanager posts alerts to Alertmanager's API v2.
type Alertmanager struct {
	cfg    AlertmanagerConfig
	url    string
	client *http.Client
	now    func() time.Time
}

// NewAlertmanager validates cfg and returns the receiver.
func NewAlertmanager(cfg AlertmanagerConfig) (*Alertmanager, error) {
	if err := validURL("url", cfg.URL); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL)
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v2/alerts"
	cfg.Headers = maps.Clone(cfg.Headers)
	return &Alertmanager{cfg: cfg, url: u.String(), client: httpClient(cfg.Client, cfg.Timeout), now: time.Now}, nil
}

// PostableAlert is one element of the body of POST /api/v2/alerts (Alertmanager's
// OpenAPI "postableAlert").
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// AlertsFor returns the body Send posts for n. A firing alert ends
// AlertmanagerEndsAfter from now unless re-sent; a resolved one at its EndsAt.
func (am *Alertmanager) AlertsFor(n Notification) []PostableAlert {
	out := make([]PostableAlert, 0, len(n.Alerts))
	for _, a := range n.Alerts {
		p := PostableAlert{Labels: labelsOf(a), Annotations: annotationsOf(a), StartsAt: a.StartsAt.UTC(),
			EndsAt: a.EndsAt.UTC(), GeneratorURL: orDefault(a.GeneratorURL, n.ExternalURL)}
		if a.State == Firing {
			p.EndsAt = am.now().Add(AlertmanagerEndsAfter).UTC()
		}
		out = append(out, p)
	}
	return out
}

// Send posts n's alerts.
func (am *Alertmanager) Send(ctx context.Context, n Notification) error {
	return postJSON(ctx, am.client, am.url, am.cfg.Headers, am.AlertsFor(n))
}

// Notify posts a alone.
func (am *Alertmanager) Notify(ctx context.Context, a Alert) error {
	return am.Send(ctx, single(am.cfg.Name, a))
}
