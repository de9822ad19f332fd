package alert

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// SlackConfig configures a Slack incoming webhook.
type SlackConfig struct {
	// Name of the notifier in the Manager (default "slack").
	Name string
	// WebhookURL is the incoming webhook URL. Required, http or https.
	WebhookURL string
	// Channel overrides the webhook's channel, optional.
	Channel string
	// Client sends the requests (default: http.Client with DefaultHTTPTimeout).
	Client *http.Client
}

// Slack posts alerts to a Slack incoming webhook as Block Kit messages.
type Slack struct {
	cfg    SlackConfig
	client *http.Client
}

// NewSlack validates cfg and returns the notifier.
func NewSlack(cfg SlackConfig) (*Slack, error) {
	if err := validURL("slack", cfg.WebhookURL); err != nil {
		return nil, err
	}
	return &Slack{cfg: cfg, client: httpClient(cfg.Client)}, nil
}

// SlackMessage is the incoming-webhook payload: Block Kit blocks plus the plain text
// Slack shows in notifications.
type SlackMessage struct {
	Channel string       `json:"channel,omitempty"`
	Text    string       `json:"text"`
	Blocks  []SlackBlock `json:"blocks"`
}

// SlackBlock is a Block Kit block (header, section or context).
type SlackBlock struct {
	Type     string      `json:"type"`
	Text     *SlackText  `json:"text,omitempty"`
	Fields   []SlackText `json:"fields,omitempty"`
	Elements []SlackText `json:"elements,omitempty"`
}

// SlackText is a Block Kit text object.
type SlackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Message returns the payload Notify posts for a.
func (s *Slack) Message(a Alert) SlackMessage {
	icon := map[State]string{Firing: ":rotating_light:", Resolved: ":white_check_mark:"}[a.State]
	title := fmt.Sprintf("[%s] %s", strings.ToUpper(string(a.State)), a.Name)
	fields := []SlackText{
		{Type: "mrkdwn", Text: "*Severity*\n" + a.Severity.String()},
		{Type: "mrkdwn", Text: "*Started*\n" + a.StartsAt.UTC().Format("2006-01-02 15:04:05 MST")},
	}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		fields = append(fields, SlackText{Type: "mrkdwn", Text: fmt.Sprintf("*%s*\n%s", k, a.Labels[k])})
	}
	body := a.Summary
	if a.Description != "" {
		body += "\n" + a.Description
	}
	return SlackMessage{
		Channel: s.cfg.Channel,
		Text:    fmt.Sprintf("%s %s: %s", icon, title, a.Summary),
		Blocks: []SlackBlock{
			{Type: "header", Text: &SlackText{Type: "plain_text", Text: title}},
			{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: icon + " " + body}, Fields: fields},
			{Type: "context", Elements: []SlackText{{Type: "mrkdwn", Text: "fingerprint `" + a.Fingerprint + "`"}}},
		},
	}
}

// Notify posts a's message.
func (s *Slack) Notify(ctx context.Context, a Alert) error {
	return postJSON(ctx, s.client, s.cfg.WebhookURL, nil, s.Message(a))
}
