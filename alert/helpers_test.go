package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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
	defer ch.Close()
	r, err := ch.Check(etcdtest.Context(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fastRetry() alert.Retry {
	return alert.Retry{Attempts: 5, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxRetryAfter: 5 * time.Second}
}

// timing returns a Config whose root route notifies quickly, for tests.
func timing(wait, interval, repeat time.Duration) alert.Config {
	return alert.Config{Route: &alert.Route{GroupWait: wait, GroupInterval: interval, RepeatInterval: repeat}}
}

// sink is a receiver that records notifications and can be made to fail.
type sink struct {
	mu   sync.Mutex
	got  []alert.Notification
	fail func(alert.Notification) error
}

func (s *sink) Send(_ context.Context, n alert.Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(n); err != nil {
			return err
		}
	}
	s.got = append(s.got, n)
	return nil
}

func (s *sink) notifications() []alert.Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// summary lists each notification as "STATUS alertname[member,...]" with its alerts.
func (s *sink) summary() []string {
	var out []string
	for _, n := range s.notifications() {
		var as []string
		for _, a := range n.Alerts {
			as = append(as, fmt.Sprintf("%s:%s:%s", a.Name, a.Labels["member"], a.State))
		}
		out = append(out, fmt.Sprintf("%s %s", n.Status, strings.Join(as, ",")))
	}
	return out
}

// member is one member of a synthetic health report.
type member struct {
	id     uint64
	name   string
	up     bool
	leader uint64
}

// synthReport builds a health report of members at t, as health.Checker would.
func synthReport(t time.Time, ms ...member) *health.Report {
	r := &health.Report{Time: t}
	for _, m := range ms {
		st := health.MemberStatus{Reachable: m.up}
		st.Member.ID = health.ID(m.id)
		st.Member.Name = m.name
		if m.up {
			st.Status.Leader = health.ID(m.leader)
		} else {
			st.Error = "connection refused"
		}
		r.Members = append(r.Members, st)
		r.Quorum.Voters++
		if m.up && m.leader != 0 {
			r.Quorum.Healthy++
		}
	}
	r.Quorum.Size = r.Quorum.Voters/2 + 1
	r.Quorum.HasQuorum = r.Quorum.Healthy >= r.Quorum.Size
	return r
}

// three returns a healthy 3-member cluster with member 1 leading, with the members
// listed in down stopped.
func three(t time.Time, down ...uint64) *health.Report {
	ms := []member{{1, "m1", true, 1}, {2, "m2", true, 1}, {3, "m3", true, 1}}
	for i := range ms {
		if slices.Contains(down, ms[i].id) {
			ms[i].up = false
		}
	}
	leaderUp := !slices.Contains(down, 1)
	for i := range ms {
		if !leaderUp {
			ms[i].leader = 0
		}
	}
	return synthReport(t, ms...)
}

func stateOf(m *alert.Manager, name, member string) alert.State {
	for _, a := range m.Alerts() {
		if a.Name == name && (member == "" || a.Labels["member"] == member) {
			return a.State
		}
	}
	return ""
}
