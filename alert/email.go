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
	// Name of the notifier in the Manager (default "email").
	Name string
	// Addr is the server's host:port. Required.
	Addr string
	// From is the sender address and To the recipients. Required, RFC 5322 addresses.
	From string
	To   []string
	// Username and Password enable PLAIN authentication (after STARTTLS).
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

// NewEmail validates cfg and returns the notifier.
func NewEmail(cfg EmailConfig) (*Email, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("%w: email: address %q is not host:port", ErrInvalidNotifier, cfg.Addr)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("%w: email: sender %q: %v", ErrInvalidNotifier, cfg.From, err)
	}
	if len(cfg.To) == 0 {
		return nil, fmt.Errorf("%w: email: no recipients", ErrInvalidNotifier)
	}
	e := &Email{cfg: cfg, host: host, from: from.Address}
	for _, t := range cfg.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("%w: email: recipient %q: %v", ErrInvalidNotifier, t, err)
		}
		e.to = append(e.to, a.Address)
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, fmt.Errorf("%w: email: username and password go together", ErrInvalidNotifier)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: email: negative timeout", ErrInvalidNotifier)
	}
	if e.cfg.Timeout == 0 {
		e.cfg.Timeout = DefaultHTTPTimeout
	}
	return e, nil
}

// Message returns the mail (headers and body) Notify sends for a.
func (e *Email) Message(a Alert) []byte {
	var b bytes.Buffer
	subject := fmt.Sprintf("[%s] %s (%s)", strings.ToUpper(string(a.State)), a.Name, a.Severity)
	if m := a.Labels["member"]; m != "" {
		subject += " member " + m
	}
	fmt.Fprintf(&b, "From: %s\r\n", e.cfg.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(e.cfg.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "X-Etcd-Monitor-Fingerprint: %s\r\n", a.Fingerprint)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
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
	fmt.Fprintf(&b, "Fingerprint: %s\r\n", a.Fingerprint)
	return b.Bytes()
}

// Notify sends a's mail.
func (e *Email) Notify(ctx context.Context, a Alert) error {
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
	if err := e.send(c, a); err != nil {
		return fmt.Errorf("%w: email: %w", ErrDelivery, err)
	}
	return nil
}

var errNoStartTLS = errors.New("server does not offer STARTTLS")

func (e *Email) send(c *smtp.Client, a Alert) error {
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
	if _, err := w.Write(e.Message(a)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
