package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/smtp"
	"slices"
	"strings"
	"time"
)

// EmailConfig configures delivery by SMTP.
type EmailConfig struct {
	// Name of the receiver (default "email").
	Name string
	// Addr is the server's host:port. Required.
	Addr string
	// From is the sender address and To the recipients. Required, RFC 5322 addresses.
	From string
	To   []string
	// Username and Password enable PLAIN authentication (after STARTTLS). The password
	// is a secret, never logged.
	Username, Password string
	// TLS configures STARTTLS (default: verify the server against Addr's host).
	TLS *tls.Config
	// AllowPlaintext sends without STARTTLS to servers that do not offer it. By default
	// such a server is refused.
	AllowPlaintext bool
	// Timeout bounds one delivery (default DefaultHTTPTimeout).
	Timeout time.Duration
}

// Email sends alerts as plain-text mail over SMTP with STARTTLS.
type Email struct {
	cfg  EmailConfig
	host string
	from string
	to   []string
}

// NewEmail validates cfg and returns the receiver. A username with AllowPlaintext to a
// server other than localhost is refused: Go's PLAIN authentication never sends
// credentials over an unencrypted connection, so such mail could never be delivered.
func NewEmail(cfg EmailConfig) (*Email, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fieldErr("addr", "%q is not host:port", cfg.Addr)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fieldErr("from", "%q: %v", cfg.From, err)
	}
	if len(cfg.To) == 0 {
		return nil, fieldErr("to", "no recipients")
	}
	e := &Email{cfg: cfg, host: host, from: from.Address}
	for i, t := range cfg.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("to[%d]", i), "%q: %v", t, err)
		}
		e.to = append(e.to, a.Address)
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, fieldErr("username", "username and password go together")
	}
	if cfg.Username != "" && cfg.AllowPlaintext && host != "localhost" && host != "127.0.0.1" && host != "::1" {
		return nil, fieldErr("allow_plaintext", "with a username, mail to %s is never delivered without STARTTLS: "+
			"Go's PLAIN authentication refuses to send credentials unencrypted (drop allow_plaintext or the credentials)", hostOnly(cfg.Addr))
	}
	if cfg.Timeout < 0 {
		return nil, fieldErr("timeout", "negative duration %v", cfg.Timeout)
	}
	if e.cfg.Timeout == 0 {
		e.cfg.Timeout = DefaultHTTPTimeout
	}
	return e, nil
}

// headerSafe removes CR and LF (and other control characters) from a header value, so
// no label or member name can inject headers.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// MessageFor returns the mail (headers and body) Send sends for n.
func (e *Email) MessageFor(n Notification) []byte {
	var b bytes.Buffer
	name := n.GroupLabels["alertname"]
	if name == "" && len(n.Alerts) > 0 {
		name = n.Alerts[0].Name
	}
	subject := fmt.Sprintf("[%s", strings.ToUpper(string(n.Status)))
	if n.Status == Firing {
		subject += fmt.Sprintf(":%d", len(n.Firing()))
	}
	subject += "] " + name
	if len(n.Alerts) == 1 {
		a := n.Alerts[0]
		subject += fmt.Sprintf(" (%s)", a.Severity)
		if m := a.Labels["member"]; m != "" {
			subject += " member " + m
		}
	}
	if c := n.GroupLabels["cluster"]; c != "" {
		subject += " cluster " + c
	}
	fmt.Fprintf(&b, "From: %s\r\n", headerSafe(e.cfg.From))
	fmt.Fprintf(&b, "To: %s\r\n", headerSafe(strings.Join(e.cfg.To, ", ")))
	fmt.Fprintf(&b, "Subject: %s\r\n", headerSafe(subject))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "X-Etcd-Monitor-Group: %s\r\n", groupHash(n.Receiver, n.GroupKey))
	if len(n.Alerts) == 1 {
		fmt.Fprintf(&b, "X-Etcd-Monitor-Fingerprint: %s\r\n", n.Alerts[0].Fingerprint)
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i, a := range n.Alerts {
		if i > 0 {
			b.WriteString("\r\n----\r\n\r\n")
		}
		fmt.Fprintf(&b, "%s\r\n\r\n", a.Summary)
		if a.Description != "" {
			fmt.Fprintf(&b, "%s\r\n\r\n", a.Description)
		}
		fmt.Fprintf(&b, "Alert:       %s\r\nState:       %s\r\nSeverity:    %s\r\nStarted:     %s\r\n",
			a.Name, a.State, a.Severity, a.StartsAt.UTC().Format(time.RFC3339))
		if !a.EndsAt.IsZero() {
			fmt.Fprintf(&b, "Ended:       %s\r\n", a.EndsAt.UTC().Format(time.RFC3339))
		}
		for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
			fmt.Fprintf(&b, "%-12s %s\r\n", k+":", a.Labels[k])
		}
		if rb := a.Annotations["runbook_url"]; rb != "" {
			fmt.Fprintf(&b, "Runbook:     %s\r\n", rb)
		}
		fmt.Fprintf(&b, "Fingerprint: %s\r\n", a.Fingerprint)
	}
	return b.Bytes()
}

// Message returns the mail Notify sends for a alone.
func (e *Email) Message(a Alert) []byte { return e.MessageFor(single(e.cfg.Name, a)) }

// Send sends n's mail.
func (e *Email) Send(ctx context.Context, n Notification) error { return e.send(ctx, e.MessageFor(n)) }

// Notify sends a's mail.
func (e *Email) Notify(ctx context.Context, a Alert) error { return e.send(ctx, e.Message(a)) }

func (e *Email) send(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.cfg.Addr)
	if err != nil {
		return fmt.Errorf("%w: email: %w", ErrDelivery, err)
	}
	// net/smtp knows no context: a deadline bounds every read and write, and the
	// connection is closed if ctx ends first.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("%w: email: %w", ErrDelivery, err)
	}
	defer c.Close()
	if err := e.session(c, msg); err != nil {
		return fmt.Errorf("%w: email: %w", ErrDelivery, err)
	}
	return nil
}

var errNoStartTLS = errors.New("server does not offer STARTTLS")

func (e *Email) session(c *smtp.Client, msg []byte) error {
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := e.cfg.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		} else {
			cfg = cfg.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = e.host
		}
		if err := c.StartTLS(cfg); err != nil {
			return err
		}
	} else if !e.cfg.AllowPlaintext {
		return Permanent(errNoStartTLS)
	}
	if e.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.cfg.Username, e.cfg.Password, e.host)); err != nil {
			return err
		}
	}
	if err := c.Mail(e.from); err != nil {
		return err
	}
	for _, to := range e.to {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
