package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/tests/v3/framework/integration"

	"github.com/etcd-monitor/etcd-monitor/alert"
)

// BenchmarkTimeToNotify measures how long after two of three members stop the first
// critical notification reaches a webhook, with the default rules, group_by and
// group_wait and the health interval of the sub-benchmark. Each iteration stops two
// members, waits for the page, restarts them and waits for the resolve.
//
// Besides the mean (s-to-notify) and the worst (s-max-to-notify) it splits the time where it goes: s-to-check is from
// the stop to the start of the health check that saw it (the alert's startsAt, on
// average half an interval), s-check-to-notify from there to the webhook (the check
// itself, group_wait and the delivery).
//
//	go test -run '^$' -bench TimeToNotify -benchtime 5x ./cmd/etcd-monitor
func BenchmarkTimeToNotify(b *testing.B) {
	for _, interval := range []time.Duration{time.Second, 5 * time.Second} {
		b.Run(fmt.Sprintf("interval=%v", interval), func(b *testing.B) { benchmarkTimeToNotify(b, interval) })
	}
}

func benchmarkTimeToNotify(b *testing.B, interval time.Duration) {
	integration.BeforeTestExternal(b)
	c := integration.NewCluster(b, &integration.ClusterConfig{Size: 3, UseBridge: true})
	defer c.Terminate(b)
	c.WaitLeader(b)

	var mu sync.Mutex
	var firing, resolved []time.Time
	var starts []time.Time // startsAt of each firing notification's first alert
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m alert.WebhookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if m.Status == "firing" && len(m.Alerts) > 0 {
			firing = append(firing, time.Now())
			starts = append(starts, m.Alerts[0].StartsAt)
		} else {
			resolved = append(resolved, time.Now())
		}
	}))
	defer hook.Close()
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(firing), len(resolved)
	}

	var eps, members []string
	for _, m := range c.Members {
		eps = append(eps, m.GRPCURL)
		members = append(members, fmt.Sprintf("%s: %q", m.Name, m.GRPCURL))
	}
	cfg := writeFile(b, "bench.yaml", fmt.Sprintf(`
etcd: {endpoints: [%s], member_endpoints: {%s}}
monitor: {health_check_interval: %s, metrics_interval: %s}
api: {request_log: false}
alerts:
  console: false
  route: {receiver: hook, group_interval: 1s}   # group_wait: the defaults
  receivers: [{name: hook, type: webhook, url: %q}]
`, strings.Join(quoteAll(eps), ", "), strings.Join(members, ", "), interval, interval, hook.URL))
	d := startDaemon(b, "--config="+cfg)
	defer d.stop()

	waitFor := func(what string, within time.Duration, ok func() bool) {
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				b.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	healthy := func() bool {
		var st statusView
		return request(b, "GET", d.url+"/api/v1/cluster/status", "", "", &st) == http.StatusOK && st.Healthy && st.Reachable == 3
	}
	waitFor("healthy", time.Minute, healthy)

	var total, worst, toCheck, checkToNotify time.Duration
	n := 0
	for b.Loop() {
		f0, r0 := count()
		c.Members[0].Stop(b)
		c.Members[1].Stop(b)
		lost := time.Now()
		waitFor("page", 3*(interval+10*time.Second), func() bool { f, _ := count(); return f > f0 })
		mu.Lock()
		total += firing[f0].Sub(lost)
		worst = max(worst, firing[f0].Sub(lost))
		toCheck += starts[f0].Sub(lost)
		checkToNotify += firing[f0].Sub(starts[f0])
		mu.Unlock()
		n++
		for _, i := range []int{0, 1} {
			if err := c.Members[i].Restart(b); err != nil {
				b.Fatal(err)
			}
		}
		waitFor("resolve", 2*time.Minute, func() bool { _, r := count(); return r > r0 })
		waitFor("healthy again", time.Minute, healthy)
	}
	b.ReportMetric(total.Seconds()/float64(n), "s-to-notify")
	b.ReportMetric(worst.Seconds(), "s-max-to-notify")
	b.ReportMetric(toCheck.Seconds()/float64(n), "s-to-check")
	b.ReportMetric(checkToNotify.Seconds()/float64(n), "s-check-to-notify")
}
