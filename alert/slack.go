package alert

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// SlackConfig configures a Slack incoming webhook.
type SlackConfig struct {
	// Name of the receiver (default "slack").
	Name string
	// WebhookURL is the incoming webhook URL. Required, http or https. Its path is a
	// secret and is never logged.
	WebhookURL string
	// Channel overrides the webhook's channel, optional.
	Channel string
	// Timeout bounds one attempt when Client is nil (default DefaultHTTPTimeout).
	Timeout time.Duration
	// Client sends the requests (default: http.Client with Timeout).
	Client *http.Client
}

// Slack posts notifications to a Slack incoming webhook as Block Kit messages.
type Slack struct {
	cfg    SlackConfig
	client *http.Client
}

// NewSlack validates cfg and returns the receiver.
func NewSlack(cfg SlackConfig) (*Slack, error) {
	if err := validURL("webhook_url", cfg.WebhookURL); err != nil {
		return nil, err
	}
	return &Slack{cfg: cfg, client: httpClient(cfg.Client, cfg.Timeout)}, nil
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

// maxSlackAlerts bounds the sections of one message (Slack allows 50 blocks).
const maxSlackAlerts = 20

// MessageFor returns the payload Send posts for n: a header naming the group, one
// section per alert.
func (s *Slack) MessageFor(n Notification) SlackMessage {
	icon := map[State]string{Firing: ":rotating_light:", Resolved: ":white_check_mark:"}[n.Status]
	firing := len(n.Firing())
	name := n.GroupLabels["alertname"]
	if name == "" && len(n.Alerts) > 0 {
		name = n.Alerts[0].Name
	}
	title := fmt.Sprintf("[%s", strings.ToUpper(string(n.Status)))
	if n.Status == Firing {
		title += fmt.Sprintf(":%d", firing)
	}
	title += "] " + name
	if c := n.GroupLabels["cluster"]; c != "" {
		title += " (" + c + ")"
	}
	summary := ""
	if len(n.Alerts) > 0 {
		summary = n.Alerts[0].Summary
	}
	msg := SlackMessage{Channel: s.cfg.Channel, Text: fmt.Sprintf("%s %s: %s", icon, title, summary),
		Blocks: []SlackBlock{{Type: "header", Text: &SlackText{Type: "plain_text", Text: truncate(title, 150)}}}}
	for i, a := range n.Alerts {
		if i == maxSlackAlerts {
			msg.Blocks = append(msg.Blocks, SlackBlock{Type: "context", Elements: []SlackText{{Type: "mrkdwn",
				Text: fmt.Sprintf("and %d more", len(n.Alerts)-i)}}})
			break
		}
		body := fmt.Sprintf("*%s* %s", strings.ToUpper(string(a.State)), a.Summary)
		if a.Description != "" {
			body += "\n" + a.Description
		}
		if rb := a.Annotations["runbook_url"]; rb != "" {
			body += fmt.Sprintf("\n<%s|runbook>", rb)
		}
		fields := []SlackText{
			{Type: "mrkdwn", Text: "*Severity*\n" + a.Severity.String()},
			{Type: "mrkdwn", Text: "*Started*\n" + a.StartsAt.UTC().Format("2006-01-02 15:04:05 MST")},
		}
		for _, k := range sortedKeys(a.Labels) {
			if len(fields) < 10 {
				fields = append(fields, SlackText{Type: "mrkdwn", Text: fmt.Sprintf("*%s*\n%s", k, a.Labels[k])})
			}
		}
		msg.Blocks = append(msg.Blocks,
			SlackBlock{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: truncate(body, 3000)}, Fields: fields},
			SlackBlock{Type: "context", Elements: []SlackText{{Type: "mrkdwn", Text: "fingerprint `" + a.Fingerprint + "`"}}})
	}
	return msg
}

// Message returns the payload Notify posts for a alone.
func (s *Slack) Message(a Alert) SlackMessage { return s.MessageFor(single(s.cfg.Name, a)) }

// Send posts n's message.
func (s *Slack) Send(ctx context.Context, n Notification) error {
	return postJSON(ctx, s.client, s.cfg.WebhookURL, nil, s.MessageFor(n))
}

// Notify posts a's message.
func (s *Slack) Notify(ctx context.Context, a Alert) error {
	return postJSON(ctx, s.client, s.cfg.WebhookURL, nil, s.Message(a))
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut: Slack rejects
// a header over 150 characters and a section over 3000.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
