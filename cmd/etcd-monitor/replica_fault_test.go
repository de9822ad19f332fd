package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
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
	"github.com/etcd-monitor/etcd-monitor/internal/pgtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// storedChecks reads the health checks PostgreSQL holds in [since, until), oldest first.
func storedChecks(ctx context.Context, st *postgres.Store, since, until time.Time) ([]time.Time, error) {
	cs, err := st.HealthChecks(ctx, store.HistoryQuery{Since: since, Until: until, Limit: 10000})
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Time)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out, nil
}

// gaps returns the intervals between consecutive times (and from since to the first,
// from the last to until) longer than max.
func gaps(ts []time.Time, since, until time.Time, max time.Duration) []string {
	var out []string
	prev := since
	for _, t := range append(slices.Clone(ts), until) {
		if d := t.Sub(prev); d > max {
			out = append(out, fmt.Sprintf("%v after %s", d.Round(10*time.Millisecond), prev.Format("15:04:05.000")))
		}
		prev = t
	}
	return out
}

// An active and a standby daemon on one PostgreSQL; PostgreSQL stops for longer than
// the lease (the active one steps down) and starts again. The history PostgreSQL holds
// afterwards has a check every health interval across the outage, queued by the daemon
// that held the lease last and written once PostgreSQL is back; and before the outage
// and once the replicas settled after it, only one of them writes (no check stored
// twice).
func TestReplicaHistoryThroughPostgresRestart(t *testing.T) {
	srv := pgtest.Start(t)
	t.Setenv("ETCD_MONITOR_TEST_PRIVATE_POSTGRES", srv.URL)
	const interval = time.Second
	cfg := writeFile(t, "pg.yaml", `
monitor:
  health_check_interval: 1s
  metrics_interval: 1s
store:
  type: postgres
  dsn_env: ETCD_MONITOR_TEST_PRIVATE_POSTGRES
replica:
  lease_ttl: 2s
`)
	a := startDaemon(t, "--config="+cfg, endpoints())
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		r, err := replicaOf(a)
		assert.NoError(ct, err)
		assert.True(ct, r.Active)
	}, 20*time.Second, 50*time.Millisecond)
	b := startDaemon(t, "--config="+cfg, endpoints())
	// settled waits until one daemon is active and the other names it.
	settled := func(msg string) {
		t.Helper()
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			ra, err := replicaOf(a)
			assert.NoError(ct, err)
			rb, err := replicaOf(b)
			assert.NoError(ct, err)
			assert.NotEqual(ct, ra.Active, rb.Active, "one active")
			assert.Equal(ct, ra.ActiveID, rb.ActiveID, "both name it")
			assert.NotEmpty(ct, ra.ActiveID)
		}, 30*time.Second, 50*time.Millisecond, msg)
	}
	settled("settled at start")

	ctx := context.Background()
	reader, err := postgres.Open(ctx, srv.URL)
	require.NoError(t, err)
	defer func() { reader.Close() }()
	// atLeast waits until PostgreSQL holds checks up to t.
	atLeast := func(until time.Time, within time.Duration) {
		t.Helper()
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			ts, err := storedChecks(ctx, reader, until.Add(-time.Minute), until.Add(time.Minute))
			assert.NoError(ct, err)
			if assert.NotEmpty(ct, ts) {
				assert.False(ct, ts[len(ts)-1].Before(until), "newest stored check %v", ts[len(ts)-1])
			}
		}, within, 100*time.Millisecond)
	}
	// once asserts that [since, until) holds about one check an interval, not two.
	once := func(since, until time.Time, what string) {
		t.Helper()
		ts, err := storedChecks(ctx, reader, since, until)
		require.NoError(t, err)
		n := int(until.Sub(since) / interval)
		assert.LessOrEqual(t, len(ts), n+n/2+1, "%s: %d checks in %v, one daemon writes", what, len(ts), until.Sub(since))
		assert.Empty(t, gaps(ts, since, until, 5*interval/2), "%s: no gap", what)
	}
	steady := time.Now()
	atLeast(steady.Add(5*interval), 30*time.Second)
	once(steady, steady.Add(5*interval), "before the outage")

	stopAt := time.Now()
	srv.Ctl(t, "-m", "fast", "stop")
	reader.Close()
	// The active one steps down and queues its history; the outage lasts until it has
	// queued ten checks' worth.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ra, err := replicaOf(a)
		assert.NoError(ct, err)
		rb, err := replicaOf(b)
		assert.NoError(ct, err)
		assert.False(ct, ra.Active || rb.Active, "both stepped down")
		qa, err := metricValue(a.url, "etcd_monitor_store_queue_length")
		assert.NoError(ct, err)
		qb, err := metricValue(b.url, "etcd_monitor_store_queue_length")
		assert.NoError(ct, err)
		assert.GreaterOrEqual(ct, qa+qb, 20.0, "health checks and metric snapshots queued")
	}, 60*time.Second, 100*time.Millisecond)
	restartAt := time.Now()
	srv.Ctl(t, "-l", filepath.Join(filepath.Dir(srv.Data), "server.log"), "start")
	t.Logf("PostgreSQL was down %v", restartAt.Sub(stopAt).Round(100*time.Millisecond))

	reader, err = postgres.Open(ctx, srv.URL)
	require.NoError(t, err)
	settled("settled after the restart")
	back := time.Now()
	// The queue is written (the store's writer backs off up to 5s), and then the
	// outage has a check every interval, or as soon as a slow check ends: one waits for
	// the member list and then for the probes, each up to the check timeout (2s by
	// default), which a loaded machine reaches. Checks lost with the queue would leave a
	// gap of the outage's length (ten checks' worth at least, above).
	checkTimeout := defaultConfig().Monitor.CheckTimeout
	atLeast(back.Add(2*interval), 60*time.Second)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ts, err := storedChecks(ctx, reader, steady, back)
		assert.NoError(ct, err)
		assert.Empty(ct, gaps(ts, steady, back, interval+2*checkTimeout), "no gap from %s to %s (stopped %s)",
			steady.Format("15:04:05.000"), back.Format("15:04:05.000"), stopAt.Format("15:04:05.000"))
	}, 30*time.Second, 200*time.Millisecond)
	// A campaign period after settling, the old holder saw the new one.
	quiet := time.Now().Add(interval)
	atLeast(quiet.Add(5*interval), 30*time.Second)
	once(quiet, quiet.Add(5*interval), "after the restart")
	for _, d := range []*runningDaemon{a, b} {
		n, err := metricValue(d.url, "etcd_monitor_store_dropped_total")
		require.NoError(t, err)
		assert.Zero(t, n, "nothing dropped: the queue held the outage")
	}
}

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
				lease, stop := windDown(ctx, lease, func() time.Duration { return ttl / 8 })
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

// Who writes history: the active replica, not the standby that sees it; an active
// replica cut off from PostgreSQL steps down and goes on writing (its store queues),
// since it cannot see who holds the lease now; the standby writes from its takeover.
func TestReplicaHistoryWriter(t *testing.T) {
	schema := pgSchema(t)
	const ttl = 2 * time.Second
	own := pgStore(t, schema)
	a := startReplica(t, own, "a", ttl, recordingTerm(&events{}, "a"))
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, a.r.status().Active) }, 3*ttl, 10*time.Millisecond)
	b := startReplica(t, pgStore(t, schema), "b", ttl, recordingTerm(&events{}, "b"))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "a", b.r.status().ActiveID)
		assert.False(c, b.r.writesHistory(), "the standby that sees a does not write")
	}, 3*ttl, 10*time.Millisecond)
	assert.True(t, a.r.writesHistory(), "the active one writes")

	require.NoError(t, own.Close()) // a's PostgreSQL is gone: no renewal, no release
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.False(c, a.r.status().Active, "a stepped down")
		assert.True(c, b.r.status().Active, "b took over")
		assert.True(c, b.r.writesHistory(), "b writes")
	}, 3*(ttl+ttl/4), 10*time.Millisecond)
	assert.True(t, a.r.writesHistory(), "a, which cannot see b, goes on writing: twice rather than never")
}

// A write of the term that PostgreSQL refuses as fenced off (the lease changed hands
// behind this replica's back) ends the term's lease at once, not at the next renewal.
func TestReplicaFencedWriteEndsTheLease(t *testing.T) {
	schema := pgSchema(t)
	st := pgStore(t, schema)
	const ttl = time.Minute // renewals every 15s: the write comes first
	write := make(chan struct{})
	got := make(chan error, 1)
	a := startLeasedReplica(t, st, "a", ttl, func(ctx, lease context.Context, fst store.Store) {
		select {
		case <-write:
		case <-ctx.Done():
			return
		}
		err := fst.PutAlerts(ctx, []store.Alert{{Fingerprint: "f", State: "firing", ActiveAt: time.Now()}}, nil)
		<-lease.Done()
		got <- errors.Join(err, context.Cause(lease))
		<-ctx.Done()
	})
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, a.r.status().Active) }, 10*time.Second, 10*time.Millisecond)
	_, err := st.Pool().Exec(context.Background(), `UPDATE leases SET holder = 'thief', token = token + 1, expires = now() + interval '1 hour'`)
	require.NoError(t, err)
	close(write)
	var cause error
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		select {
		case cause = <-got:
		default:
		}
		assert.Error(c, cause)
	}, 10*time.Second, 10*time.Millisecond)
	assert.ErrorIs(t, cause, postgres.ErrFenced, "the write was fenced off")
	assert.ErrorIs(t, cause, errFencedOff, "and that ended the lease")
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.False(c, a.r.status().Active) }, 10*time.Second, 10*time.Millisecond)
}
