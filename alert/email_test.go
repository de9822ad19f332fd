package alert_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// mail is one message the in-process SMTP server accepted.
type mail struct {
	from     string
	to       []string
	data     []byte
	tls      bool
	username string
}

// smtpServer is an in-process SMTP server that records what it accepts.
type smtpServer struct {
	addr string
	mu   sync.Mutex
	got  []mail
}

type smtpSession struct {
	srv  *smtpServer
	conn *smtp.Conn
	cur  mail
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != "alerts" || password != "secret" {
			return errors.New("bad credentials")
		}
		s.cur.username = username
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.got = append(s.srv.got, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.cur = mail{username: s.cur.username} }
func (s *smtpSession) Logout() error { return nil }

func (s *smtpServer) mails() []mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mail(nil), s.got...)
}

// startSMTP runs a server offering STARTTLS with tlsCfg (none when nil). It returns the
// server and a pool trusting its certificate.
func startSMTP(t *testing.T, withTLS bool) (*smtpServer, *x509.CertPool) {
	s := &smtpServer{}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &smtpSession{srv: s, conn: c}, nil })
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var pool *x509.CertPool
	if withTLS {
		// Borrow httptest's certificate (valid for 127.0.0.1) and the pool that trusts it.
		certSrv := httptest.NewTLSServer(http.NotFoundHandler())
		srv.TLSConfig = &tls.Config{Certificates: certSrv.TLS.Certificates}
		pool = certSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		certSrv.Close()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return s, pool
}

// Guarantee 6, email: an in-process SMTP server receives the mail over STARTTLS with
// PLAIN authentication.
func TestEmailOverSTARTTLS(t *testing.T) {
	srv, pool := startSMTP(t, true)
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithRetry(fastRetry()),
		alert.WithEmail(alert.EmailConfig{
			Addr: srv.addr, From: "etcd-monitor <monitor@example.com>", To: []string{"oncall@example.com", "Ops <ops@example.com>"},
			Username: "alerts", Password: "secret", TLS: &tls.Config{RootCAs: pool},
		}))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })

	firing, err := m.Evaluate(context.Background(), report(t), nil)
	require.NoError(t, err)
	require.Len(t, firing, 1)
	require.NoError(t, m.Flush(etcdtest.Context(t, 20*time.Second)))
	ds := deliveriesOf(m, "email")
	require.Len(t, ds, 1)
	require.True(t, ds[0].Delivered, ds[0].Error)

	got := srv.mails()
	require.Len(t, got, 1)
	assert.True(t, got[0].tls, "sent after STARTTLS")
	assert.Equal(t, "alerts", got[0].username)
	assert.Equal(t, "monitor@example.com", got[0].from)
	assert.Equal(t, []string{"oncall@example.com", "ops@example.com"}, got[0].to)
	assert.Contains(t, string(got[0].data), "Subject: [FIRING:1] EtcdTestSwitch (critical) member "+firing[0].Labels["member"]+"\r\n")
	assert.Contains(t, string(got[0].data), "X-Etcd-Monitor-Fingerprint: "+firing[0].Fingerprint+"\r\n")
	assert.Contains(t, string(got[0].data), "switched on by the test")

	sw.set(false)
	_, err = m.Evaluate(context.Background(), report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(etcdtest.Context(t, 20*time.Second)))
	got = srv.mails()
	require.Len(t, got, 2)
	assert.True(t, bytes.Contains(got[1].data, []byte("Subject: [RESOLVED] EtcdTestSwitch")))
}

// A server without STARTTLS is refused (no retry) unless plaintext is allowed; an
// untrusted certificate fails the delivery.
func TestEmailRefusesPlaintextAndUntrustedTLS(t *testing.T) {
	plain, _ := startSMTP(t, true)
	noTLS, _ := startSMTP(t, false)
	sw := &switchRule{on: true}
	cfg := func(name, addr string, allow bool) alert.EmailConfig {
		return alert.EmailConfig{Name: name, Addr: addr, From: "m@example.com", To: []string{"o@example.com"}, AllowPlaintext: allow}
	}
	retry := fastRetry()
	retry.Attempts = 2
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithRetry(retry),
		alert.WithEmail(cfg("untrusted", plain.addr, false)),
		alert.WithEmail(cfg("refused", noTLS.addr, false)),
		alert.WithEmail(cfg("allowed", noTLS.addr, true)))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	_, err = m.Evaluate(context.Background(), report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(etcdtest.Context(t, 20*time.Second)))

	ds := deliveriesOf(m, "refused")
	require.Len(t, ds, 1, "not retried")
	assert.Contains(t, ds[0].Error, "STARTTLS")
	ds = deliveriesOf(m, "untrusted")
	require.Len(t, ds, 2)
	assert.Contains(t, ds[1].Error, "certificate")
	assert.Empty(t, plain.mails())
	ds = deliveriesOf(m, "allowed")
	require.Len(t, ds, 1)
	assert.True(t, ds[0].Delivered, ds[0].Error)
	require.Len(t, noTLS.mails(), 1)
	assert.False(t, noTLS.mails()[0].tls)
}

func TestConsole(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithConsole(zap.New(core)))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	r := report(t)
	_, err = m.Evaluate(context.Background(), r, nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(etcdtest.Context(t, 5*time.Second)))
	sw.set(false)
	_, err = m.Evaluate(context.Background(), r, nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(etcdtest.Context(t, 5*time.Second)))
	entries := logs.All()
	require.Len(t, entries, 2)
	assert.Equal(t, zap.ErrorLevel, entries[0].Level, "firing critical")
	assert.Equal(t, "test switch is on", entries[0].Message)
	assert.Equal(t, "EtcdTestSwitch", entries[0].ContextMap()["alert"])
	assert.Equal(t, zap.InfoLevel, entries[1].Level, "resolved")
	assert.Equal(t, "resolved", entries[1].ContextMap()["state"])
}

// A member name with CR/LF cannot inject mail headers: the Subject is one line.
func TestEmailSubjectStripsCRLF(t *testing.T) {
	e, err := alert.NewEmail(alert.EmailConfig{Addr: "smtp.example.com:587", From: "a@example.com", To: []string{"b@example.com"}})
	require.NoError(t, err)
	labels := alert.MemberLabels(1, "m1\r\nBcc: victim@example.com")
	labels["cluster"] = "prod\nX-Evil: 1"
	msg := string(e.MessageFor(alert.Notification{Receiver: "mail", GroupKey: "k", Status: alert.Firing,
		GroupLabels: map[string]string{"alertname": "EtcdMembersDown", "cluster": labels["cluster"]},
		Alerts:      []alert.Alert{{Name: "EtcdMembersDown", Severity: alert.Warning, State: alert.Firing, Labels: labels}}}))
	headers, _, ok := strings.Cut(msg, "\r\n\r\n")
	require.True(t, ok)
	for _, h := range strings.Split(headers, "\r\n") {
		assert.NotContains(t, h, "\n")
		assert.False(t, strings.HasPrefix(h, "Bcc:") || strings.HasPrefix(h, "X-Evil:"), "injected header %q", h)
	}
	assert.Contains(t, headers, "Subject: [FIRING:1] EtcdMembersDown (warning) member m1  Bcc: victim@example.com cluster prod X-Evil: 1")
}

// Slack rejects headers over 150 characters: long names are cut, not refused.
func TestSlackLimits(t *testing.T) {
	sl, err := alert.NewSlack(alert.SlackConfig{WebhookURL: "https://hooks.slack.com/services/T/B/X"})
	require.NoError(t, err)
	long := strings.Repeat("é", 200)
	msg := sl.MessageFor(alert.Notification{Status: alert.Firing, GroupLabels: map[string]string{"alertname": "A", "cluster": long},
		Alerts: []alert.Alert{{Name: "A", State: alert.Firing, Description: strings.Repeat("x", 5000)}}})
	assert.LessOrEqual(t, len(msg.Blocks[0].Text.Text), 150)
	assert.True(t, utf8.ValidString(msg.Blocks[0].Text.Text))
	assert.LessOrEqual(t, len(msg.Blocks[1].Text.Text), 3000)
}
