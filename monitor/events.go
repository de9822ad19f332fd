package monitor

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PathEvents is the Server-Sent Events stream the status page listens to.
const PathEvents = "/api/v1/events"

// The kinds of event on PathEvents. An event says what changed, not the new state: a
// client fetches that from the API, with its own credentials.
const (
	// EventHealth follows a health check of the cluster named in the event.
	EventHealth = "health"
	// EventMetrics follows a metric collection of the cluster named in the event.
	EventMetrics = "metrics"
	// EventAlerts follows a change of the cluster's alerts: one pending, firing,
	// resolved, silenced, unsilenced or inhibited.
	EventAlerts = "alerts"
	// EventResync tells the client to fetch everything again: it is the first event of
	// every stream, and follows events the client was too slow to take.
	EventResync = "resync"
)

const (
	eventPoll      = 200 * time.Millisecond // how often the hub looks for changes
	eventBuffer    = 32                     // events queued per client before it must resync
	eventKeepalive = 15 * time.Second       // a comment line, so proxies and clients see the stream alive
	eventWriteWait = 10 * time.Second       // a write that takes longer drops the client
	maxEventConns  = 256                    // concurrent streams; more get 503
)

// Event is one message of the event stream: its kind is the SSE event name, and this
// its JSON data.
type Event struct {
	Kind    string    `json:"-"`
	Cluster string    `json:"cluster,omitempty"`
	Time    time.Time `json:"time"`
}

// eventHub fans changes of the Service's state out to the connected streams. While at
// least one stream is connected, one goroutine compares the Service's in-memory state
// (when each cluster was last checked and collected, its alerts and their status) with
// what it saw eventPoll earlier and publishes an event per change; with no stream, no
// goroutine runs. Publishing never blocks: a client whose queue is full loses the event
// and gets a resync instead, so a slow or gone client never holds up the monitor or the
// other clients.
type eventHub struct {
	// versions returns a version string per "kind/cluster"; a change of a version is an
	// event of that kind, a version left out is unchanged.
	versions func() map[string]string
	// spawn runs fn in a goroutine the owner waits for at Close; false when closing.
	spawn func(fn func()) bool
	stop  <-chan struct{} // closed when the owner closes: the watcher ends
	// poll, size, keepalive and writeWait are eventPoll, eventBuffer, eventKeepalive and
	// eventWriteWait, variables for tests.
	poll, keepalive, writeWait time.Duration
	size                       int

	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	watcher chan struct{} // closed to stop the running watcher; nil when none runs
}

type subscriber struct {
	ch      chan Event
	dropped atomic.Bool // an event did not fit in ch: the client must resync
}

func newEventHub(versions func() map[string]string, spawn func(func()) bool, stop <-chan struct{}) *eventHub {
	return &eventHub{versions: versions, spawn: spawn, stop: stop, poll: eventPoll, size: eventBuffer,
		keepalive: eventKeepalive, writeWait: eventWriteWait, subs: map[*subscriber]struct{}{}}
}

// subscribe registers a client, starting the watcher for the first one. It returns nil
// when there are too many clients or the owner is closing.
func (h *eventHub) subscribe() *subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxEventConns {
		return nil
	}
	if h.watcher == nil {
		stop := make(chan struct{})
		if !h.spawn(func() { h.watch(stop) }) {
			return nil
		}
		h.watcher = stop
	}
	sub := &subscriber{ch: make(chan Event, h.size)}
	h.subs[sub] = struct{}{}
	return sub
}

// unsubscribe forgets a client, stopping the watcher after the last one.
func (h *eventHub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, sub)
	if len(h.subs) == 0 && h.watcher != nil {
		close(h.watcher)
		h.watcher = nil
	}
}

// clients returns the number of connected clients.
func (h *eventHub) clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// publish queues ev for every client without waiting for any.
func (h *eventHub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		select {
		case sub.ch <- ev:
		default:
			sub.dropped.Store(true)
		}
	}
}

// watch publishes an event for every version that changes, until stop or the hub's
// owner closes.
func (h *eventHub) watch(stop <-chan struct{}) {
	t := time.NewTicker(h.poll)
	defer t.Stop()
	seen := h.versions()
	for {
		select {
		case <-stop:
			return
		case <-h.stop:
			return
		case <-t.C:
		}
		now := h.versions()
		for key, v := range seen {
			if _, ok := now[key]; !ok {
				now[key] = v // unreadable for now: no change
			}
		}
		at := time.Now()
		for key, v := range now {
			if seen[key] != v {
				kind, cluster, _ := strings.Cut(key, "/")
				h.publish(Event{Kind: kind, Cluster: cluster, Time: at})
			}
		}
		seen = now
	}
}

// eventVersions is the state the hub watches: per cluster, when the last check and
// collection finished and a digest of its alerts with their status.
func (s *Service) eventVersions() map[string]string {
	out := make(map[string]string, 3*len(s.clusters))
	digests := map[string]uint64{}
	// ActiveAlerts reads the manager that evaluates (or, on a standby, the store), the
	// one the API answers from.
	// A version left out (the alerts, when the store cannot be read) counts as unchanged.
	alerts, alertsErr := s.ActiveAlerts(AlertQuery{})
	for _, a := range alerts {
		c := a.Cluster
		f := fnv.New64a()
		fmt.Fprintf(f, "%d|%s|%s|%s|%s", digests[c], a.Fingerprint, a.State,
			strings.Join(a.Status.SilencedBy, ","), strings.Join(a.Status.InhibitedBy, ","))
		digests[c] = f.Sum64()
	}
	for _, c := range s.clusters {
		h := c.health()
		out[EventHealth+"/"+c.name] = h.at.String()
		snap, err := c.metrics()
		v := "none"
		if snap != nil {
			v = snap.Time.String()
		}
		if err != nil {
			v += "|" + err.Error()
		}
		out[EventMetrics+"/"+c.name] = v
		if alertsErr == nil {
			out[EventAlerts+"/"+c.name] = fmt.Sprint(digests[c.name])
		}
	}
	return out
}

// serveEvents streams events as text/event-stream until the client goes, its writes
// stall for eventWriteWait, or the Service is interrupted or closed.
func (s *Service) serveEvents(hub *eventHub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Query parameters are ignored, as on /health: a client may add one to bust a cache.
		if r.Method != http.MethodGet {
			pageError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; use GET", r.Method, r.URL.Path), http.MethodGet)
			return
		}
		if isClosed(s.interrupted) {
			pageError(w, http.StatusServiceUnavailable, "service is shutting down", "")
			return
		}
		sub := hub.subscribe()
		if sub == nil {
			pageError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many event streams (at most %d) or shutting down", maxEventConns), "")
			return
		}
		defer hub.unsubscribe(sub)

		rc := http.NewResponseController(w)
		hd := w.Header()
		hd.Set("Content-Type", "text/event-stream")
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
		w.WriteHeader(http.StatusOK)
		var seq uint64
		send := func(write func(io.Writer)) bool {
			// A deadline per write overrides the server's WriteTimeout, which would
			// otherwise end every stream after a fixed time, and drops a client that
			// stops reading. A writer without deadlines (a test recorder) is fine.
			_ = rc.SetWriteDeadline(time.Now().Add(hub.writeWait))
			write(w)
			return rc.Flush() == nil
		}
		event := func(ev Event) bool {
			data, _ := json.Marshal(ev)
			seq++
			return send(func(w io.Writer) { fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", seq, ev.Kind, data) })
		}
		if !send(func(w io.Writer) { fmt.Fprintf(w, "retry: 2000\n\n") }) || !event(Event{Kind: EventResync, Time: time.Now()}) {
			return
		}
		keepalive := time.NewTicker(hub.keepalive)
		defer keepalive.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-s.interrupted:
				return
			case <-keepalive.C:
				if !send(func(w io.Writer) { io.WriteString(w, ": keepalive\n\n") }) {
					return
				}
			case ev := <-sub.ch:
				if sub.dropped.Swap(false) {
					// Events were lost: what is queued is stale too.
					for len(sub.ch) > 0 {
						<-sub.ch
					}
					ev = Event{Kind: EventResync, Time: time.Now()}
				}
				if !event(ev) {
					return
				}
			}
		}
	})
}
