package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/pgtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// pgURL returns the test PostgreSQL's URL; without one the test skips, or fails in CI.
func pgURL(t *testing.T) string { return pgtest.URL(t) }

// pgSchema returns a fresh schema name, dropped when t ends.
func pgSchema(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "t_replica_" + hex.EncodeToString(b)
	u := pgURL(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE")
	})
	return name
}

func pgStore(t *testing.T, schema string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, pgURL(t), postgres.WithSchema(schema))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// events is a log of what the terms did, in order.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

// recordingTerm is a term that logs its start and end.
func recordingTerm(ev *events, id string) func(ctx context.Context, st store.Store) {
	return func(ctx context.Context, st store.Store) {
		ev.add(id + " start")
		<-ctx.Done()
		ev.add(id + " stop")
	}
}

type running struct {
	r      *replica
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, st *postgres.Store, id string, ttl time.Duration, term func(context.Context, store.Store)) *running {
	t.Helper()
	return startLeasedReplica(t, st, id, ttl, func(ctx, _ context.Context, st store.Store) { term(ctx, st) })
}

// startLeasedReplica is startReplica with a term that gets the lease's context too.
func startLeasedReplica(t *testing.T, st *postgres.Store, id string, ttl time.Duration, term term) *running {
	t.Helper()
	r, err := newReplica(st, id, ttl, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	require.NoError(t, err)
	return runReplica(t, r, term)
}

// runReplica runs r with term until the test ends.
func runReplica(t *testing.T, r *replica, term term) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(run.done)
		r.run(ctx, term)
	}()
	t.Cleanup(run.stop)
	return run
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

// One replica is active at a time; a replica that shuts down releases the lease and a
// standby takes over at once (well within the TTL), after the first one's term ended.
func TestReplicaHandoverOnShutdown(t *testing.T) {
	schema := pgSchema(t)
	// Long enough that a campaign period (TTL/4) plus a loaded machine's delays stays
	// well short of the expiry (at least 3/4 TTL after the stop) that an unreleased
	// lease would make b wait for.
	const ttl = 8 * time.Second
	var ev events
	a := startReplica(t, pgStore(t, schema), "a", ttl, recordingTerm(&ev, "a"))
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, a.r.status().Active) }, 3*time.Second, 10*time.Millisecond)
	b := startReplica(t, pgStore(t, schema), "b", ttl, recordingTerm(&ev, "b"))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "a", b.r.status().ActiveID)
	}, 3*time.Second, 10*time.Millisecond)
	assert.False(t, b.r.status().Active)
	assert.Equal(t, "a", a.r.status().ActiveID)

	stopped := time.Now()
	a.stop()
	assert.False(t, a.r.status().Active)
	// Released: b needs at most one campaign period (TTL/4), not the TTL.
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, b.r.status().Active) }, ttl/2, 10*time.Millisecond)
	t.Logf("takeover after a graceful stop: %v", time.Since(stopped))
	// b's term starts just after b reports itself active.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"a start", "a stop", "b start"}, ev.all())
	}, ttl, 10*time.Millisecond)
}

// An active replica whose lease is taken (here by hand, as by a replica that saw it
// expire) stops its term at its next renewal.
func TestReplicaStepsDownWhenLeaseTaken(t *testing.T) {
	schema := pgSchema(t)
	st := pgStore(t, schema)
	const ttl = 2 * time.Second
	var ev events
	core, logs := observer.New(zap.InfoLevel)
	r, err := newReplica(st, "a", ttl, zap.New(core))
	require.NoError(t, err)
	a := runReplica(t, r, func(ctx, _ context.Context, st store.Store) { recordingTerm(&ev, "a")(ctx, st) })
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, a.r.status().Active) }, 3*time.Second, 10*time.Millisecond)
	_, err = st.Pool().Exec(context.Background(), `UPDATE leases SET holder = 'thief', token = token + 1, expires = now() + interval '1 hour'`)
	require.NoError(t, err)
	// One renewal period (TTL/4 = 500ms) and the term's end; waited for three TTLs, as
	// a loaded machine delays the renewal's query. That it was the renewal that ended the
	// term, not the renewals' running out of time (a quarter TTL before the deadline,
	// 1-1.5 s after the theft), is in the reason the replica logs.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"a start", "a stop"}, ev.all())
		s := a.r.status()
		assert.False(c, s.Active)
		assert.Equal(c, "thief", s.ActiveID)
	}, 3*ttl, 10*time.Millisecond)
	stopped := logs.FilterMessage("replica: standby: alert engine stopped").All()
	require.Len(t, stopped, 1)
	assert.Equal(t, errLeaseTaken.Error(), stopped[0].ContextMap()["reason"], "the term ended at a renewal that found the lease taken")
}

// An active replica that cannot reach PostgreSQL ends its term before the lease
// expires in PostgreSQL, so a standby taking over never runs alongside it.
func TestReplicaStepsDownBeforeExpiryWhenPostgresUnreachable(t *testing.T) {
	schema := pgSchema(t)
	own := pgStore(t, schema)
	observer := pgStore(t, schema)
	// The term ends a quarter TTL before its deadline; that quarter is what a loaded
	// machine may take from the timer that ends it, so not a short one.
	const ttl = 4 * time.Second
	var mu sync.Mutex
	var ended time.Time
	a := startReplica(t, own, "a", ttl, func(ctx context.Context, st store.Store) {
		<-ctx.Done()
		mu.Lock()
		ended = time.Now()
		mu.Unlock()
	})
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, a.r.status().Active) }, 3*time.Second, 10*time.Millisecond)
	require.NoError(t, own.Close()) // every later call of a fails: no renewal, no release
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		mu.Lock()
		defer mu.Unlock()
		assert.False(c, ended.IsZero())
	}, 2*ttl, 10*time.Millisecond)
	l, err := observer.NewLease(alertingLease, "observer", ttl)
	require.NoError(t, err)
	info, err := l.Info(context.Background())
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "a", info.Holder)
	assert.True(t, ended.Before(info.Expires), "term ended %v, lease expires %v", ended, info.Expires)
	t.Logf("term ended %v before the lease expired", info.Expires.Sub(ended))
}

// Replica processes of TestReplicaFailoverDuringIncident run this test: a replica
// whose term is an alert engine over the fenced store, evaluating the incident state
// the parent serves, and notifying the parent.
func TestReplicaHelperProcess(t *testing.T) {
	parent := os.Getenv("ETCD_MONITOR_REPLICA_PARENT")
	if parent == "" {
		t.Skip("runs as a replica process of TestReplicaFailoverDuringIncident")
	}
	id := os.Getenv("ETCD_MONITOR_REPLICA_ID")
	st := pgStore(t, os.Getenv("ETCD_MONITOR_REPLICA_SCHEMA"))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func(path string) string {
		resp, err := client.Get(parent + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	post := func(path string, v any) error {
		b, _ := json.Marshal(v)
		resp, err := client.Post(parent+path, "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	term := func(ctx context.Context, st store.Store) {
		started := time.Now()
		m, err := alert.New(alert.WithStore(st), alert.WithShutdownTimeout(100*time.Millisecond),
			alert.WithConfig(alert.Config{Route: &alert.Route{Receiver: "pager", GroupWait: 2 * time.Second,
				GroupInterval: time.Second, RepeatInterval: time.Hour}}),
			alert.WithReceiver("pager", alert.SenderFunc(func(ctx context.Context, n alert.Notification) error {
				var firing, resolved []string
				for _, a := range n.Alerts {
					if a.State == alert.Firing {
						firing = append(firing, a.Name)
					} else {
						resolved = append(resolved, a.Name)
					}
				}
				return post("/notify", replicaNotice{Replica: id, Firing: firing, Resolved: resolved})
			}), true),
			alert.WithRules(alert.Rule{Name: "TestIncident", Severity: alert.Critical, Summary: "the test's incident", Needs: alert.NeedsHealth,
				Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
					if h.Healthy {
						return nil
					}
					return []alert.Finding{{Value: 1, Description: "down"}}
				}}))
		if err != nil {
			t.Errorf("alert engine: %v", err)
			return
		}
		defer m.Close()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			state := get("/state")
			if state == "" {
				continue
			}
			if _, err := m.EvaluateCluster(ctx, "prod", &health.Report{Time: time.Now(), Healthy: state == "up"}, nil); err != nil {
				continue
			}
			_ = post("/evaluated", replicaEvaluated{Replica: id, Since: time.Since(started)})
		}
	}
	r, err := newReplica(st, id, time.Second, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx, func(ctx, _ context.Context, st store.Store) { term(ctx, st) })
	}()
	_ = post("/ready", replicaEvaluated{Replica: id})
	poll := time.NewTicker(50 * time.Millisecond)
	for get("/exit?replica="+id) != "yes" {
		<-poll.C
	}
	poll.Stop()
	cancel()
	<-done
}

type replicaNotice struct {
	Replica  string   `json:"replica"`
	Firing   []string `json:"firing,omitempty"`
	Resolved []string `json:"resolved,omitempty"`
}

func (n replicaNotice) String() string {
	if len(n.Firing) > 0 {
		return n.Replica + " firing " + strings.Join(n.Firing, ",")
	}
	return n.Replica + " resolved " + strings.Join(n.Resolved, ",")
}

type replicaEvaluated struct {
	Replica string        `json:"replica"`
	Since   time.Duration `json:"since"`
}

// parent is what the replica processes talk to: the incident state, and the receiver
// of their notifications (one pager for all of them, as in production).
type parent struct {
	mu       sync.Mutex
	state    string
	notices  []string
	ready    map[string]bool
	running  map[string]time.Duration // how long each replica's current term has run
	exit     map[string]bool
	srv      *httptest.Server
	children map[string]*exec.Cmd
	out      map[string]*bytes.Buffer
}

func newParent(t *testing.T) *parent {
	p := &parent{state: "up", ready: map[string]bool{}, running: map[string]time.Duration{}, exit: map[string]bool{},
		children: map[string]*exec.Cmd{}, out: map[string]*bytes.Buffer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		io.WriteString(w, p.state)
	})
	mux.HandleFunc("GET /exit", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.exit[r.URL.Query().Get("replica")] {
			io.WriteString(w, "yes")
		}
	})
	decode := func(r *http.Request, v any) { _ = json.NewDecoder(r.Body).Decode(v) }
	mux.HandleFunc("POST /notify", func(w http.ResponseWriter, r *http.Request) {
		var n replicaNotice
		decode(r, &n)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.notices = append(p.notices, n.String())
	})
	mux.HandleFunc("POST /ready", func(w http.ResponseWriter, r *http.Request) {
		var e replicaEvaluated
		decode(r, &e)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.ready[e.Replica] = true
	})
	mux.HandleFunc("POST /evaluated", func(w http.ResponseWriter, r *http.Request) {
		var e replicaEvaluated
		decode(r, &e)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.running[e.Replica] = e.Since
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *parent) set(state string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = state
}

func (p *parent) noticeLog() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.notices...)
}

// start runs a replica process.
func (p *parent) start(t *testing.T, id, schema string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "ETCD_MONITOR_REPLICA_PARENT="+p.srv.URL, "ETCD_MONITOR_REPLICA_ID="+id,
		"ETCD_MONITOR_REPLICA_SCHEMA="+schema)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	p.mu.Lock()
	p.children[id], p.out[id] = cmd, out
	p.mu.Unlock()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("replica %s output:\n%s", id, out.String())
		}
	})
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		p.mu.Lock()
		defer p.mu.Unlock()
		assert.True(c, p.ready[id], "replica %s ready", id)
	}, 30*time.Second, 20*time.Millisecond)
}

// kill ends a replica process as a crash does: SIGKILL, no release, no flush.
func (p *parent) kill(t *testing.T, id string) {
	t.Helper()
	p.mu.Lock()
	cmd := p.children[id]
	p.mu.Unlock()
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
}

// stop asks a replica process to shut down and checks it exits cleanly (no leak).
func (p *parent) stop(t *testing.T, id string) {
	t.Helper()
	p.mu.Lock()
	p.exit[id] = true
	cmd := p.children[id]
	p.mu.Unlock()
	assert.NoError(t, cmd.Wait(), "replica %s exits cleanly", id)
}

// Kill the active daemon during an incident, twice. First while the firing
// notification is still in group_wait: the standby takes over within two health
// intervals (here the lease TTL, 1s) and sends the firing. Then kill that one after it
// notified, and clear the incident before anyone took over: the next standby sends the
// resolve, and never the firing again.
func TestReplicaFailoverDuringIncident(t *testing.T) {
	t.Parallel() // waits on replica processes; its own schema
	schema := pgSchema(t)
	obs := pgStore(t, schema)
	p := newParent(t)
	const interval = time.Second // the lease TTL, and the health interval it stands for
	holder := func() string {
		l, err := obs.NewLease(alertingLease, "observer", interval)
		if err != nil {
			return ""
		}
		info, err := l.Info(context.Background())
		if err != nil || info.Expired {
			return ""
		}
		return info.Holder
	}

	p.start(t, "a", schema)
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, "a", holder()) }, 3*interval, 10*time.Millisecond)
	p.start(t, "b", schema)

	// The incident: a evaluates it as firing and keeps that in the store; it dies
	// before group_wait (2s) lets it notify.
	p.set("down")
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		alerts, err := obs.Alerts(context.Background())
		assert.NoError(c, err)
		assert.Len(c, alerts, 1)
		for _, a := range alerts {
			assert.Equal(c, "firing", a.State)
		}
	}, 5*time.Second, 5*time.Millisecond)
	p.kill(t, "a")
	killed := time.Now()
	require.Empty(t, p.noticeLog(), "a died within group_wait")
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, "b", holder()) }, 2*2*interval, 10*time.Millisecond)
	t.Logf("b took over %v after a was killed", time.Since(killed))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"b firing TestIncident"}, p.noticeLog())
	}, 10*time.Second, 10*time.Millisecond)

	// b notified; c stands by; b dies and the incident ends while nobody is active.
	p.start(t, "c", schema)
	p.kill(t, "b")
	p.set("up")
	killed = time.Now()
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, "c", holder()) }, 2*2*interval, 10*time.Millisecond)
	t.Logf("c took over %v after b was killed", time.Since(killed))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"b firing TestIncident", "c resolved TestIncident"}, p.noticeLog())
	}, 10*time.Second, 10*time.Millisecond)
	// c has run past group_wait and group_interval: a duplicate would have gone out.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		p.mu.Lock()
		defer p.mu.Unlock()
		assert.Greater(c, p.running["c"], 4*time.Second)
	}, 15*time.Second, 20*time.Millisecond)
	assert.Equal(t, []string{"b firing TestIncident", "c resolved TestIncident"}, p.noticeLog(), "no duplicate, no lost resolve")
	p.stop(t, "c")
}

// On a replica, the alert engine of a term that ends (lease lost) closes within an
// eighth of the lease TTL, whatever api.shutdown_timeout says: the lease margin is a
// quarter TTL, and an engine still flushing after it could notify alongside the next
// term's. What it could not send stays due in the store for the next term.
func TestReplicaEngineClosesWithinTheLeaseMargin(t *testing.T) {
	cfg := defaultConfig()
	cfg.Store = store.Config{Type: store.TypePostgres, DSNEnv: "UNUSED"}
	cfg.Replica.LeaseTTL = 2 * time.Second
	cfg.API.ShutdownTimeout = time.Minute
	require.Equal(t, cfg.Replica.LeaseTTL/8, cfg.engineShutdownTimeout(), "an eighth of the lease, not api.shutdown_timeout")
	opts, err := alertOptions(&cfg, zap.NewNop())
	require.NoError(t, err)
	m, err := alert.New(append(opts,
		alert.WithReceiver("stuck", alert.SenderFunc(func(ctx context.Context, _ alert.Notification) error {
			<-ctx.Done() // a receiver that never answers
			return ctx.Err()
		}), true),
		alert.WithRules(alert.Rule{Name: "TestIncident", Severity: alert.Critical, Needs: alert.NeedsHealth,
			Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding { return []alert.Finding{{Value: 1}} }}))...)
	require.NoError(t, err)
	_, err = m.EvaluateCluster(context.Background(), "prod", &health.Report{Time: time.Now()}, nil)
	require.NoError(t, err)
	closed := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(closed)
		m.Close()
	}()
	// The engine's options carry that bound: Close gives up on the stuck receiver after
	// it, not after api.shutdown_timeout. How soon after is the scheduler's to say on a
	// loaded machine, so the wait only tells the two apart.
	wait := cfg.API.ShutdownTimeout / 3
	select {
	case <-closed:
		t.Logf("closed in %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(wait):
		t.Fatalf("the engine did not close within %v: it waits for api.shutdown_timeout (%v), not %v", wait,
			cfg.API.ShutdownTimeout, cfg.engineShutdownTimeout())
	}
}

// replicaView is the replica part of GET /health.
type replicaView struct {
	ID       string `json:"id"`
	Active   bool   `json:"active"`
	ActiveID string `json:"activeID"`
}

func replicaOf(d *runningDaemon) (replicaView, error) {
	var h struct {
		Replica *replicaView `json:"replica"`
	}
	if err := getJSON(d.url+"/health", "", &h); err != nil {
		return replicaView{}, err
	}
	if h.Replica == nil {
		return replicaView{}, errors.New("no replica in /health")
	}
	return *h.Replica, nil
}

// Two daemons on one PostgreSQL store watch one cluster: both serve, /health says which
// is active, only the active one pages. The active one stops (a rolling upgrade)
// mid-incident: the other takes over within a health interval or so (the lease is
// released) and sends the resolve when the cluster recovers; the page is never sent
// twice. The lease's TTL is 4s, so that its campaign period (a quarter, within which the
// standby takes a released lease) is the health interval, and a renewal a loaded
// machine's PostgreSQL answers late does not end a term: a term that ends with a send
// whose record it could not write leaves it due, and the next term sends it again.
func TestEndToEndTwoReplicas(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	schema := pgSchema(t)
	c := etcdtest.NewCluster(t, 3)
	rec := newReceivers(t)
	cfg := e2eConfig(t, c, rec.urls[0], rec.urls[1], rec.urls[2], fmt.Sprintf(`
store:
  type: postgres
  dsn_env: %s
  schema: %s
replica:
  lease_ttl: 4s
`, pgtest.URLEnv, schema))
	a := startDaemon(t, "--config="+cfg)
	var ra replicaView
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var err error
		ra, err = replicaOf(a)
		assert.NoError(ct, err)
		assert.True(ct, ra.Active, "the first daemon takes the lease")
	}, 10*time.Second, 50*time.Millisecond)
	b := startDaemon(t, "--config="+cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first daemon's logs:\n%s\nsecond daemon's logs:\n%s", a.logs, b.logs)
		}
	})
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		rb, err := replicaOf(b)
		assert.NoError(ct, err)
		assert.False(ct, rb.Active)
		assert.Equal(ct, ra.ID, rb.ActiveID, "the standby names the active one")
		assert.NotEqual(ct, ra.ID, rb.ID)
	}, 10*time.Second, 50*time.Millisecond)
	healthy := func(st statusView) bool { return st.Healthy && st.Reachable == 3 }
	waitStatus(t, a, time.Minute, healthy, "healthy at start (a)")
	waitStatus(t, b, time.Minute, healthy, "healthy at start (b)")

	// Quorum lost: both daemons see it, one pages.
	c.StopMember(0)
	c.StopMember(1)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 1, rec.pd.count("trigger"), "pagerduty")
	}, 3*notifyBound, 50*time.Millisecond, "one page: %s", rec.counts())
	waitStatus(t, b, time.Minute, func(st statusView) bool { return !st.Quorum.HasQuorum }, "the standby monitors too")

	// The active daemon stops; the standby takes over.
	require.NoError(t, a.stop())
	stopped := time.Now()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		rb, err := replicaOf(b)
		assert.NoError(ct, err)
		assert.True(ct, rb.Active)
	}, 2*2*e2eInterval, 20*time.Millisecond, "takeover within two health intervals (waited twice that)")
	t.Logf("b active %v after a stopped", time.Since(stopped).Round(10*time.Millisecond))
	// A duplicate would follow within group_wait of the new term's first evaluation.
	duplicated := func() bool { return rec.pd.count("trigger") > 1 }
	assert.Never(t, duplicated, e2eGroupWait+3*e2eInterval, 200*time.Millisecond,
		"no duplicate page after the takeover: %s", rec.counts())

	c.RestartMember(0)
	c.RestartMember(1)
	c.WaitLeader(t)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 1, rec.pd.count("resolve"), "pagerduty resolve")
	}, 30*time.Second, 100*time.Millisecond, "the new active replica resolves: %s", rec.counts())
	assert.Equal(t, 1, rec.pd.count("trigger"), "still one page: %s", rec.counts())
	rec.noProblems(t)
}

// metricValue reads one unlabelled sample from the daemon's /metrics.
func metricValue(url, name string) (float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("%s not in /metrics", name)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// PostgreSQL stops and starts again under a running daemon: the API keeps answering
// from memory, the failures are counted in etcd_monitor_store_errors_total, the daemon
// steps down from the alerting lease while it cannot renew it and takes it again when
// PostgreSQL is back, and it shuts down cleanly afterwards.
func TestEndToEndPostgresRestart(t *testing.T) {
	srv := pgtest.Start(t)
	t.Setenv("ETCD_MONITOR_TEST_PRIVATE_POSTGRES", srv.URL)
	cfg := writeFile(t, "pg.yaml", `
monitor:
  health_check_interval: 1s
  metrics_interval: 1s
store:
  type: postgres
  dsn_env: ETCD_MONITOR_TEST_PRIVATE_POSTGRES
replica:
  lease_ttl: 1s
`)
	d := startDaemon(t, "--config="+cfg, endpoints())
	active := func(want bool) func(ct *assert.CollectT) {
		return func(ct *assert.CollectT) {
			r, err := replicaOf(d)
			assert.NoError(ct, err)
			assert.Equal(ct, want, r.Active)
		}
	}
	require.EventuallyWithT(t, active(true), 10*time.Second, 50*time.Millisecond)
	status := func(ct *assert.CollectT) {
		var st statusView
		assert.NoError(ct, getJSON(d.url+"/api/v1/cluster/status", "", &st))
		assert.True(ct, st.Healthy)
	}
	require.EventuallyWithT(t, status, 30*time.Second, 50*time.Millisecond)
	errsBefore, err := metricValue(d.url, "etcd_monitor_store_errors_total")
	require.NoError(t, err)

	srv.Ctl(t, "-m", "fast", "stop")
	// Without PostgreSQL: no lease, so standby; the API still answers; errors counted.
	require.EventuallyWithT(t, active(false), 4*time.Second, 20*time.Millisecond, "stepped down within a TTL")
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		n, err := metricValue(d.url, "etcd_monitor_store_errors_total")
		assert.NoError(ct, err)
		assert.Greater(ct, n, errsBefore)
	}, 10*time.Second, 50*time.Millisecond)
	for range 5 {
		require.EventuallyWithT(t, status, 10*time.Second, 20*time.Millisecond, "the API answers from memory")
	}

	srv.Ctl(t, "-l", filepath.Join(filepath.Dir(srv.Data), "server.log"), "start")
	require.EventuallyWithT(t, active(true), 20*time.Second, 50*time.Millisecond, "active again once PostgreSQL is back")
	require.NoError(t, d.stop(), "clean shutdown")
}

// An active replica whose renewal hangs (PostgreSQL stalls; here the lease row is
// locked, and the store's operation timeout is longer than the TTL) ends its term
// before the lease expires in PostgreSQL, not when the renewal gives up.
func TestReplicaStepsDownBeforeExpiryWhenRenewalHangs(t *testing.T) {
	schema := pgSchema(t)
	// Under the store's 5s operation timeout; and the quarter TTL the term ends ahead of
	// its deadline is what a loaded machine may take from the timer that ends it, so not
	// a short one.
	const ttl = 4 * time.Second
	var mu sync.Mutex
	var ended time.Time
	a := startReplica(t, pgStore(t, schema), "a", ttl, func(ctx context.Context, st store.Store) {
		<-ctx.Done()
		mu.Lock()
		ended = time.Now()
		mu.Unlock()
	})
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, a.r.status().Active) }, 3*time.Second, 10*time.Millisecond)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgURL(t))
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	// Runs before the replica stops (cleanups run last first).
	t.Cleanup(func() {
		_ = tx.Rollback(ctx)
		_ = conn.Close(ctx)
	})
	// Every renewal from now on waits for this lock; no renewal commits after the
	// expiry read here.
	var expires time.Time
	require.NoError(t, tx.QueryRow(ctx, `SELECT expires FROM `+schema+`.leases WHERE name = $1 FOR UPDATE`, alertingLease).Scan(&expires))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		mu.Lock()
		defer mu.Unlock()
		assert.False(c, ended.IsZero())
	}, 3*5*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.True(t, ended.Before(expires), "term ended %v after the lease expired", ended.Sub(expires))
}

// A replica whose campaign waited for PostgreSQL most of the TTL (here the lease row is
// locked) does not start a term with less than its stopping time left of its own view
// of the lease (which ends before PostgreSQL's): the next campaign renews it and starts
// the term with the whole TTL.
func TestReplicaTermStartsWithTimeToStop(t *testing.T) {
	schema := pgSchema(t)
	const ttl = 2 * time.Second
	ctx := context.Background()
	st := pgStore(t, schema)
	// The row exists, free.
	x, err := st.NewLease(alertingLease, "x", ttl)
	require.NoError(t, err)
	_, err = x.Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, x.Release(ctx))
	conn, err := pgx.Connect(ctx, pgURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT 1 FROM `+schema+`.leases WHERE name = $1 FOR UPDATE`, alertingLease)
	require.NoError(t, err)

	var mu sync.Mutex
	var b *running
	var left []time.Duration // at each term's start, until the replica's own deadline
	bst := pgStore(t, schema)
	mu.Lock() // b is set before its term reads it
	b = startReplica(t, bst, "b", ttl, func(ctx context.Context, _ store.Store) {
		mu.Lock()
		left = append(left, time.Until(b.r.lease.Deadline()))
		mu.Unlock()
		<-ctx.Done()
	})
	mu.Unlock()
	// b's campaign waits for the lock.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		var waiting int
		assert.NoError(c, st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
	AND query LIKE 'INSERT INTO leases%'`).Scan(&waiting))
		assert.Equal(c, 1, waiting)
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(ttl - 100*time.Millisecond) // the stall: most of the TTL
	require.NoError(t, tx.Rollback(ctx))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		mu.Lock()
		defer mu.Unlock()
		assert.NotEmpty(c, left)
	}, 3*ttl, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, l := range left {
		assert.Greater(t, l, ttl/4, "a term started %v before its deadline", l)
	}
}

// A replica writes no history until the lease names it: one that opened the store and
// then lost PostgreSQL before it could read the lease stays closed (the last holder, if
// alive, is writing), and it opens when it takes the lease.
func TestReplicaWritesNoHistoryBeforeReadingTheLease(t *testing.T) {
	schema := pgSchema(t)
	const ttl = 2 * time.Second
	gone := pgStore(t, schema)
	core, logs := observer.New(zap.WarnLevel)
	r, err := newReplica(gone, "late", ttl, zap.New(core))
	require.NoError(t, err)
	assert.False(t, r.writesHistory(), "before its first campaign")

	require.NoError(t, gone.Close())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx, func(ctx, _ context.Context, _ store.Store) { <-ctx.Done() })
	}()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, logs.FilterMessage("replica: cannot reach the lease").Len(), 3, "campaigns that failed")
	}, 3*ttl, 10*time.Millisecond)
	assert.False(t, r.writesHistory(), "a replica that never read the lease writes nothing")
	cancel()
	<-done

	a := startReplica(t, pgStore(t, schema), "a", ttl, recordingTerm(&events{}, "a"))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, a.r.status().Active)
		assert.True(c, a.r.writesHistory(), "the holder writes")
	}, 3*ttl, 10*time.Millisecond)
}

// A replica that stops renews the lease while its term winds down, so that what the
// term records at its end (a page it delivered a moment ago) is written within the
// lease rather than cut off and sent again by the next term; a standby takes over once
// the lease is released.
func TestReplicaRenewsTheLeaseWhileItsTermWindsDown(t *testing.T) {
	schema := pgSchema(t)
	const ttl = 2 * time.Second
	wrote := make(chan error, 1)
	a := startLeasedReplica(t, pgStore(t, schema), "a", ttl, func(ctx, lease context.Context, st store.Store) {
		<-ctx.Done()
		select {
		case <-time.After(3 * ttl / 2): // a wind-down longer than the lease lasts unrenewed
		case <-lease.Done():
		}
		wrote <- st.PutGroup(lease, store.Group{Receiver: "pager", GroupKey: "{}", SentAt: time.Now(), Firing: []string{"f"}})
	})
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, a.r.status().Active) }, 3*ttl, 10*time.Millisecond)
	var ev events
	b := startReplica(t, pgStore(t, schema), "b", ttl, recordingTerm(&ev, "b"))
	assert.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, "a", b.r.status().ActiveID) }, 3*ttl, 10*time.Millisecond)

	go a.stop()
	select {
	case err := <-wrote:
		require.NoError(t, err, "the term's last write, fenced by its lease")
	case <-time.After(3 * ttl):
		t.Fatal("the term did not end")
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"b start"}, ev.all(), "b took over")
	}, 3*ttl, 10*time.Millisecond)
}
