package alert_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

// request is one request a receiver got.
type request struct {
	at   time.Time
	body []byte
}

// receiver is an HTTP endpoint that answers with the scripted status codes first (a 429
// carries Retry-After), then 2xx, and records every request.
type receiver struct {
	*httptest.Server
	ok         int
	retryAfter string

	mu     sync.Mutex
	script []int
	got    []request
}

func newReceiver(t *testing.T, ok int, script ...int) *receiver {
	r := &receiver{ok: ok, script: script, retryAfter: "1"}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{at: time.Now(), body: body})
		code := r.ok
		if len(r.script) > 0 {
			code, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", r.retryAfter)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// decode unmarshals the i-th request body into a generic map.
func (r *receiver) decode(t *testing.T, i int) map[string]any {
	t.Helper()
	reqs := r.requests()
	if i >= len(reqs) {
		t.Fatalf("receiver got %d requests, want more than %d", len(reqs), i)
	}
	var m map[string]any
	if err := json.Unmarshal(reqs[i].body, &m); err != nil {
		t.Fatalf("request %d: %v: %s", i, err, reqs[i].body)
	}
	return m
}

// switchRule fires one alert, labelled with the shared node's member name from the health
// report, while on is true.
type switchRule struct {
	mu sync.Mutex
	on bool
}

func (s *switchRule) set(on bool) {
	s.mu.Lock()
	s.on = on
	s.mu.Unlock()
}

func (s *switchRule) rule() alert.Rule {
	return alert.Rule{Name: "EtcdTestSwitch", Severity: alert.Critical, Summary: "test switch is on",
		Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.on || h == nil {
				return nil
			}
			return []alert.Finding{{Labels: map[string]string{"member": h.Members[0].Name}, Value: 1, Description: "switched on by the test"}}
		}}
}

// report checks the shared node.
func report(t *testing.T) *health.Report {
	t.Helper()
	ch, err := health.New(etcdtest.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ch.Check(etcdtest.Context(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fastRetry() alert.Retry {
	return alert.Retry{Attempts: 5, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxRetryAfter: 5 * time.Second}
}
