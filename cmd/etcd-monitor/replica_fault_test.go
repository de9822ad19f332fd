package main

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// pgProxy forwards TCP connections to PostgreSQL and can stall them all: bytes stop
// flowing both ways and the connections stay open, as when a replica's path to
// PostgreSQL stalls while the other replicas' does not.
type pgProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
	closed  bool
	conns   []net.Conn
}

// newPGProxy returns a proxy to the server of pgURL and the URL that reaches it
// through the proxy.
func newPGProxy(t *testing.T, pgURL string) (*pgProxy, string) {
	t.Helper()
	u, err := url.Parse(pgURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &pgProxy{ln: ln, target: u.Host}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *pgProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(s, c) })
		p.wg.Go(func() { p.pipe(c, s) })
	}
}

// pipe copies from src to dst, holding each chunk while the proxy is stalled.
func (p *pgProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.stalled && !p.closed {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *pgProxy) stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = on
	p.cond.Broadcast()
}

func (p *pgProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// sends records when each replica's notifications arrived.
type sends struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (s *sends) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at[id] = append(s.at[id], time.Now())
}

func (s *sends) of(id string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.at[id])
}

// termLog records when each replica's terms started and ended.
type termLog struct {
	mu     sync.Mutex
	starts map[string][]time.Time
	ends   map[string][]time.Time
}

func (l *termLog) mark(m map[string][]time.Time, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m[id] = append(m[id], time.Now())
}

func (l *termLog) get(m map[string][]time.Time, id string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(m[id])
}

// The active replica's path to PostgreSQL stalls (its renewals and its store writes
// hang) while it notifies a receiver that keeps failing, so it retries every few
// milliseconds, and while its evaluations write the store at every check. The standby
// takes the lease when it expires; the old active one sent nothing after the standby's
// term started.
func TestReplicaDeposedSendsNothingAfterTakeover(t *testing.T) {
	schema := pgSchema(t)
	proxy, viaProxy := newPGProxy(t, pgURL(t))
	// A transaction of a's left open by the stall (a fenced write holds the lease row
	// FOR SHARE) would keep b from taking the lease until PostgreSQL dropped the
	// connection; the server ends it after a second.
	viaProxy += "&idle_in_transaction_session_timeout=1000"
	stA, err := postgres.Open(context.Background(), viaProxy, postgres.WithSchema(schema))
	require.NoError(t, err)
	stB := pgStore(t, schema)
	const ttl = 4 * time.Second
	cli := etcdtest.Client(t)
	rec := &sends{at: map[string][]time.Time{}}
	terms := &termLog{starts: map[string][]time.Time{}, ends: map[string][]time.Time{}}

	start := func(id string, st *postgres.Store) (stop func()) {
		var n int
		var nmu sync.Mutex
		svc, err := monitor.New([]monitor.Cluster{{Name: "prod", Client: cli}}, monitor.WithStore(st), monitor.WithStandby(),
			monitor.WithHealthInterval(50*time.Millisecond), monitor.WithMetricsInterval(time.Hour),
			monitor.WithLogger(zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)).Named(id)),
			monitor.WithAlertOptions(
				alert.WithRetry(alert.Retry{Attempts: 1 << 20, MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}),
				alert.WithReceiver("pager", alert.SenderFunc(func(context.Context, alert.Notification) error {
					rec.add(id)
					return errors.New("the pager keeps failing")
				}), true),
				alert.WithReceiver("null", alert.SenderFunc(func(context.Context, alert.Notification) error { return nil }), true),
				alert.WithConfig(alert.Config{Route: &alert.Route{Receiver: "null", GroupWait: time.Millisecond,
					GroupInterval: 10 * time.Millisecond, RepeatInterval: time.Hour,
					Routes: []*alert.Route{{Receiver: "pager", Matchers: alert.MustParseMatchers(`alertname="TestPage"`)}}}}),
				alert.WithRules(
					alert.Rule{Name: "TestPage", Severity: alert.Critical, Needs: alert.NeedsHealth,
						Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding { return []alert.Finding{{Value: 1}} }},
					// A new alert at every check: every evaluation writes the store.
					alert.Rule{Name: "TestChurn", Severity: alert.Info, Needs: alert.NeedsHealth,
						Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding {
							nmu.Lock()
							defer nmu.Unlock()
							n++
							return []alert.Finding{{Value: 1, Labels: map[string]string{"n": strconv.Itoa(n)}}}
						}})))
		require.NoError(t, err)
		r, err := newReplica(st, id, ttl, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = svc.Run(ctx) })
		wg.Go(func() {
			r.run(ctx, func(ctx, lease context.Context, st store.Store) {
				terms.mark(terms.starts, id)
				defer terms.mark(terms.ends, id)
				lease, stop := windDown(ctx, lease, ttl/8)
				defer stop()
				if err := svc.RunAlertsLeased(ctx, lease, st); err != nil && !errors.Is(err, monitor.ErrClosed) {
					t.Logf("%s: alert engine: %v", id, err)
				}
			})
		})
		return func() {
			cancel()
			wg.Wait()
			svc.Close()
		}
	}
	stopA := start("a", stA)
	defer func() {
		proxy.stall(false)
		stopA()
		stA.Close()
	}()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NotEmpty(c, terms.get(terms.starts, "a"), "a active")
		assert.GreaterOrEqual(c, len(rec.of("a")), 10, "a pages")
	}, 30*time.Second, 10*time.Millisecond)
	stopB := start("b", stB)
	defer stopB()

	proxy.stall(true)
	stalled := time.Now()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NotEmpty(c, terms.get(terms.starts, "b"), "b took over")
		assert.Len(c, terms.get(terms.ends, "a"), len(terms.get(terms.starts, "a")), "a's term ended")
	}, 3*(ttl+ttl/4), 10*time.Millisecond)
	bStarts, aEnds := terms.get(terms.starts, "b"), terms.get(terms.ends, "a")
	require.NotEmpty(t, bStarts)
	require.NotEmpty(t, aEnds)
	bStart, aEnd := bStarts[0], aEnds[len(aEnds)-1]
	t.Logf("a's term ended %v after the stall, b's started %v after it",
		aEnd.Sub(stalled).Round(time.Millisecond), bStart.Sub(stalled).Round(time.Millisecond))
	sent := rec.of("a")
	require.NotEmpty(t, sent)
	var late []string
	for _, at := range sent {
		if !at.Before(bStart) {
			late = append(late, at.Sub(bStart).String())
		}
	}
	assert.Empty(t, late, "a notified after b's term started (%d sends in all, the last %v before b's start)",
		len(sent), bStart.Sub(sent[len(sent)-1]))
	t.Logf("a's last send %v before b's term started", bStart.Sub(sent[len(sent)-1]).Round(time.Millisecond))
}
