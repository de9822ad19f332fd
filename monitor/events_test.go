package monitor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// sseEvent is one parsed event of a stream.
type sseEvent struct{ kind, data string }

// readEvents parses a text/event-stream into events until the body ends.
func readEvents(body io.Reader, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.kind != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func newTestService(t *testing.T, opts ...Option) *Service {
	t.Helper()
	svc, err := New([]Cluster{{Name: "main", Client: etcdtest.Client(t)}}, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	return svc
}

// The stream starts with a resync, then says after each health check and collection of
// which cluster; a client that goes leaves no goroutine behind, and the hub's watcher
// stops with the last client.
func TestEventsFollowChecksAndCollections(t *testing.T) {
	var on atomic.Bool
	always := alert.Rule{Name: "TestSwitch", Severity: alert.Info, Summary: "the test's switch is on",
		Check: func(in *alert.Input) []alert.Finding {
			if on.Load() {
				return []alert.Finding{{Description: "on"}}
			}
			return nil
		}}
	svc := newTestService(t, WithHealthInterval(50*time.Millisecond), WithMetricsInterval(50*time.Millisecond),
		WithAlertOptions(alert.WithExtraRules(always)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	srv := httptest.NewServer(svc)
	defer srv.Close()

	tr := &http.Transport{DisableKeepAlives: true}
	rctx, stop := context.WithCancel(context.Background())
	defer stop() // before srv.Close, which waits for open streams
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL+PathEvents, nil)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	events := make(chan sseEvent, 100)
	go readEvents(resp.Body, events)

	first := <-events
	assert.Equal(t, EventResync, first.kind, "a stream starts with a resync")
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for !seen[EventHealth] || !seen[EventMetrics] {
		select {
		case ev, ok := <-events:
			require.True(t, ok, "stream ended")
			if ev.kind == EventHealth || ev.kind == EventMetrics {
				assert.Contains(t, ev.data, `"cluster":"main"`)
			}
			seen[ev.kind] = true
		case <-deadline:
			t.Fatalf("no health and metrics events within 10s; got %v", seen)
		}
	}

	assert.Equal(t, 1, goroutines("monitor.(*eventHub).watch"), "one watcher while a client is connected")

	// An alert appears, then a silence mutes it: each is an alerts event.
	waitAlerts := func(what string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				require.True(t, ok, "stream ended")
				if ev.kind == EventAlerts {
					assert.Contains(t, ev.data, `"cluster":"main"`)
					return
				}
			case <-deadline:
				t.Fatalf("no alerts event within 10s after %s", what)
			}
		}
	}
	on.Store(true)
	waitAlerts("an alert appeared")
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		as, err := svc.ActiveAlerts(AlertQuery{State: alert.Firing})
		assert.NoError(ct, err)
		assert.Len(ct, as, 1)
	}, 10*time.Second, 10*time.Millisecond)
	before := svc.eventVersions()[EventAlerts+"/main"]
	_, err = svc.Alerts().CreateSilence(context.Background(), alert.Silence{
		Matchers: alert.MustParseMatchers(`alertname="TestSwitch"`), EndsAt: time.Now().Add(time.Hour), CreatedBy: "test", Comment: "test"})
	require.NoError(t, err)
	assert.NotEqual(t, before, svc.eventVersions()[EventAlerts+"/main"], "a silence changes the alerts' version")
	waitAlerts("a silence")

	// The client goes: its handler and the hub's watcher end.
	stop()
	resp.Body.Close()
	for range events {
	}
	tr.CloseIdleConnections()
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Zero(ct, goroutines("monitor.(*eventHub).watch"), "watcher")
		assert.Zero(ct, goroutines("monitor.(*Service).serveEvents"), "stream handler")
	}, 10*time.Second, 10*time.Millisecond)
}

// goroutines counts the goroutines with a function of this name on their stack.
func goroutines(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// blockingWriter is a client that stops reading: its writes block until released.
type blockingWriter struct {
	header  http.Header
	mu      sync.Mutex
	buf     strings.Builder
	blocked chan struct{} // closed to let writes through
	writes  atomic.Int64
}

func (w *blockingWriter) Header() http.Header { return w.header }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Flush()              {}
func (w *blockingWriter) Write(b []byte) (int, error) {
	if w.writes.Add(1) > 2 { // the retry line and the first resync go through
		<-w.blocked
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *blockingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A client too slow to take its events neither blocks the publisher nor the other
// clients; it loses what did not fit in its queue and is told to resync.
func TestEventsSlowClientIsResynced(t *testing.T) {
	svc := newTestService(t)
	var calls atomic.Int64
	hub := newEventHub(func() map[string]string {
		n := calls.Add(1)
		return map[string]string{EventHealth + "/main": fmt.Sprint(n)} // a change at every look
	}, svc.spawn, svc.stop)
	hub.poll, hub.size = time.Millisecond, 4
	h := svc.serveEvents(hub)

	slow := &blockingWriter{header: http.Header{}, blocked: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		h.ServeHTTP(slow, httptest.NewRequestWithContext(ctx, http.MethodGet, PathEvents, nil))
	}()
	// A second client that reads keeps getting events while the first is stuck.
	fast := &blockingWriter{header: http.Header{}, blocked: make(chan struct{})}
	close(fast.blocked)
	fctx, fcancel := context.WithCancel(context.Background())
	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		h.ServeHTTP(fast, httptest.NewRequestWithContext(fctx, http.MethodGet, PathEvents, nil))
	}()

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 2, hub.clients())
		assert.Greater(ct, calls.Load(), int64(4*hub.size), "the watcher keeps publishing while a client is stuck")
		assert.Greater(ct, strings.Count(fast.String(), "event: "+EventHealth), 2*hub.size, "the other client gets its events")
	}, 10*time.Second, 5*time.Millisecond)
	close(slow.blocked)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		out := slow.String()
		// retry, the first resync, the one event it was writing when it got stuck, then a
		// resync for what it lost.
		parts := strings.Split(out, "event: ")
		if assert.GreaterOrEqual(ct, len(parts), 4, out) {
			assert.True(ct, strings.HasPrefix(parts[1], EventResync), out)
			assert.True(ct, strings.HasPrefix(parts[2], EventHealth), out)
			assert.True(ct, strings.HasPrefix(parts[3], EventResync), "after losing events: %s", out)
		}
	}, 10*time.Second, 5*time.Millisecond)

	cancel()
	<-slowDone
	fcancel()
	<-fastDone
	assert.Zero(t, hub.clients())
	hub.mu.Lock()
	assert.Nil(t, hub.watcher, "the watcher stops with the last client")
	hub.mu.Unlock()
}

// Interrupt (a daemon beginning to shut down) ends the streams, so that draining the
// server does not wait for them; Close stops the watcher and new streams get 503.
func TestEventsEndAtInterruptAndClose(t *testing.T) {
	svc, err := New([]Cluster{{Name: "main", Client: etcdtest.Client(t)}})
	require.NoError(t, err)
	srv := httptest.NewServer(svc)
	defer srv.Close()
	resp, err := http.Get(srv.URL + PathEvents)
	require.NoError(t, err)
	defer resp.Body.Close() // before srv.Close, should the test fail with the stream open
	events := make(chan sseEvent, 10)
	go readEvents(resp.Body, events)
	assert.Equal(t, EventResync, (<-events).kind)
	svc.Interrupt()
	for range events { // ends when the server ends the stream
	}
	resp.Body.Close()

	resp, err = http.Get(srv.URL + PathEvents)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NoError(t, svc.Close())

	resp, err = http.Post(srv.URL+PathEvents, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// A hub whose owner is closed starts no watcher and takes no client.
func TestEventHubAfterClose(t *testing.T) {
	svc, err := New([]Cluster{{Name: "main", Client: etcdtest.Client(t)}})
	require.NoError(t, err)
	require.NoError(t, svc.Close())
	hub := newEventHub(svc.eventVersions, svc.spawn, svc.stop)
	assert.Nil(t, hub.subscribe())
	assert.Zero(t, hub.clients())
}

// flakyWriter is a client that reads until it goes: then every write fails.
type flakyWriter struct {
	blockingWriter
	gone atomic.Bool
}

func (w *flakyWriter) Write(b []byte) (int, error) {
	if w.gone.Load() {
		return 0, io.ErrClosedPipe
	}
	return w.blockingWriter.Write(b)
}

func (w *flakyWriter) FlushError() error {
	if w.gone.Load() {
		return io.ErrClosedPipe
	}
	return nil
}

// A quiet stream carries keepalive comments; a client whose writes fail is dropped at
// once, and the hub forgets it.
func TestEventsKeepaliveAndGoneClient(t *testing.T) {
	svc := newTestService(t)
	hub := newEventHub(func() map[string]string { return map[string]string{} }, svc.spawn, svc.stop)
	hub.keepalive = 5 * time.Millisecond
	w := &flakyWriter{blockingWriter: blockingWriter{header: http.Header{}, blocked: make(chan struct{})}}
	close(w.blocked)
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.serveEvents(hub).ServeHTTP(w, httptest.NewRequest(http.MethodGet, PathEvents, nil))
	}()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Contains(ct, w.String(), ": keepalive\n\n")
	}, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, hub.clients())
	w.gone.Store(true)
	select { // the next keepalive fails: the handler returns
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler of a gone client did not return")
	}
	assert.Zero(t, hub.clients())
}

// At most maxEventConns streams at once; the next one is refused, and a place freed is
// taken again.
func TestEventHubBoundsClients(t *testing.T) {
	svc := newTestService(t)
	hub := newEventHub(func() map[string]string { return map[string]string{} }, svc.spawn, svc.stop)
	subs := make([]*subscriber, 0, maxEventConns)
	for range maxEventConns {
		sub := hub.subscribe()
		require.NotNil(t, sub)
		subs = append(subs, sub)
	}
	assert.Nil(t, hub.subscribe(), "one too many")
	hub.unsubscribe(subs[0])
	again := hub.subscribe()
	require.NotNil(t, again)
	for _, sub := range append(subs[1:], again) {
		hub.unsubscribe(sub)
	}
	assert.Zero(t, hub.clients())
}

// A version that cannot be read for a while (left out) is no change, nor is its return
// to the value it had; a change after it is one event.
func TestEventHubMissingVersionIsUnchanged(t *testing.T) {
	svc := newTestService(t)
	var calls atomic.Int64
	hub := newEventHub(func() map[string]string {
		switch n := calls.Add(1); {
		case n <= 3:
			return map[string]string{EventHealth + "/main": "1", EventAlerts + "/main": "a"}
		case n <= 6:
			return map[string]string{EventHealth + "/main": "1"} // the alerts cannot be read
		case n <= 9:
			return map[string]string{EventHealth + "/main": "1", EventAlerts + "/main": "a"}
		default:
			return map[string]string{EventHealth + "/main": "1", EventAlerts + "/main": "b"}
		}
	}, svc.spawn, svc.stop)
	hub.poll = time.Millisecond
	sub := hub.subscribe()
	require.NotNil(t, sub)
	defer hub.unsubscribe(sub)
	select {
	case ev := <-sub.ch:
		assert.Equal(t, Event{Kind: EventAlerts, Cluster: "main", Time: ev.Time}, ev)
		assert.Greater(t, calls.Load(), int64(9), "the only event is the change to b")
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the change of the alerts")
	}
	assert.Empty(t, sub.ch)
}
