package monitor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/pgtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
	_ "github.com/etcd-monitor/etcd-monitor/store/postgres" // store type postgres
)

// BenchmarkAPIStatusAt1000RPS drives the API over loopback HTTP at 1,000 requests per
// second, open loop (a request is sent every millisecond whether or not the previous
// ones have answered), while the service monitors the shared node every second: mix
// status is the status endpoints (answered from memory) with one health-history
// request in six, mix all adds every history endpoint (health, metrics, latency,
// alerts; newest records and a day in steps), six requests in eleven. It reports
// latency percentiles of the requests served (a history request refused with 429 over
// the concurrency bound counts in shed-%, not in the latencies) and the rate achieved,
// over all requests and per endpoint (p99 of each); run it with -benchtime=5000x for
// five seconds of load. The store is none, bbolt, or PostgreSQL when
// ETCD_MONITOR_TEST_POSTGRES_URL names one; with a store, it first holds a day of
// history (a check and a snapshot every 10 s, copies of the service's own, rolled up
// in PostgreSQL) and 200 alert transitions, every check and collection is written to
// it, and the history requests (health, metrics, latency, alerts) read it.
func BenchmarkAPIStatusAt1000RPS(b *testing.B) {
	for _, mix := range []struct {
		name  string
		paths []string
	}{{"status", statusPaths}, {"all", apiPaths}} {
		b.Run("mix="+mix.name, func(b *testing.B) {
			eachStore(b, func(b *testing.B, st store.Store) { benchmarkAPI(b, st, mix.paths) })
		})
	}
}

// eachStore runs fn with no store, a bbolt store and a PostgreSQL store (when
// ETCD_MONITOR_TEST_POSTGRES_URL names a server; in a schema of its own, dropped after).
func eachStore(b *testing.B, fn func(b *testing.B, st store.Store)) {
	b.Run("store=none", func(b *testing.B) { fn(b, nil) })
	b.Run("store=bbolt", func(b *testing.B) {
		st, err := store.Open(filepath.Join(b.TempDir(), "state.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		fn(b, st)
	})
	if u := os.Getenv(pgtest.URLEnv); u != "" {
		b.Run("store=postgres", func(b *testing.B) {
			schema := fmt.Sprintf("bench_api_%d", time.Now().UnixNano())
			st, err := store.OpenConfig(context.Background(), store.Config{Type: "postgres", DSNEnv: pgtest.URLEnv, Schema: schema})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				st.Close()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if conn, err := pgx.Connect(ctx, u); err == nil {
					_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
					conn.Close(ctx)
				}
			}()
			fn(b, st)
		})
	}
}

// apiPaths are the endpoints the API benchmarks request. Status endpoints answer from
// memory; history endpoints from the store when there is one (the newest records, and
// a day in steps).
var (
	statusPaths = []string{"/health", "/api/v1/clusters/local/status", "/api/v1/clusters/local/members", "/api/v1/clusters/local/leader",
		"/api/v1/alerts", "/api/v1/clusters/local/history?limit=60"}
	apiPaths = []string{"/health", "/api/v1/clusters/local/status", "/api/v1/clusters/local/members", "/api/v1/clusters/local/leader",
		"/api/v1/alerts", "/api/v1/clusters/local/history?limit=60", "/api/v1/clusters/local/history?since=24h&step=15m",
		"/api/v1/clusters/local/metrics/history?limit=60", "/api/v1/clusters/local/metrics/history?since=24h&step=15m",
		"/api/v1/clusters/local/metrics/latency?limit=60", "/api/v1/alerts/history?limit=100"}
)

// apiServer serves a Service over the shared node, checking and collecting every
// second, with st (nil: none) seeded with history; it stops when b ends.
func apiServer(b *testing.B, st store.Store) (url string, client func(path string) *http.Client) {
	cli, err := etcdtest.NewClient()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	opts := []monitor.Option{monitor.WithHealthInterval(time.Second), monitor.WithMetricsInterval(time.Second)}
	if st != nil {
		opts = append(opts, monitor.WithStore(st))
	}
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	if st != nil {
		seedHistory(b, st)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(ctx)
	}()
	srv := httptest.NewServer(svc)
	// Each endpoint has a client of its own, as different users' requests would, so a
	// slow endpoint does not hold the connections of the others; their connections are
	// opened before the load and bounded: on a loaded machine a stall of a few
	// milliseconds otherwise makes the open-loop client dial hundreds of new
	// connections at once, and the dials (serialised in the transport) become the
	// latency measured.
	clients := map[string]*http.Client{}
	var warm sync.WaitGroup
	for _, p := range apiPaths {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, MaxConnsPerHost: 32}}
		clients[p] = c
		for range 32 {
			warm.Go(func() {
				if resp, err := c.Get(srv.URL + "/health"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
	warm.Wait()
	client = func(path string) *http.Client { return clients[path] }
	b.Cleanup(func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		srv.Close()
		cancel()
		<-done
		svc.Close()
	})
	return srv.URL, client
}

// BenchmarkAPIEndpointCost requests each endpoint in turn, one request at a time: the
// cost of one request (ns/op), with no store, bbolt and PostgreSQL (as
// BenchmarkAPIStatusAt1000RPS), to tell which endpoints a load at 1,000 requests per
// second cannot afford on a small machine.
func BenchmarkAPIEndpointCost(b *testing.B) {
	eachStore(b, func(b *testing.B, st store.Store) {
		url, client := apiServer(b, st)
		for _, p := range apiPaths {
			b.Run(endpointName(p), func(b *testing.B) {
				for b.Loop() {
					resp, err := client(p).Get(url + p)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("%s: %s", p, resp.Status)
					}
				}
			})
		}
	})
}

func benchmarkAPI(b *testing.B, st store.Store, paths []string) {
	url, client := apiServer(b, st)
	var (
		mu     sync.Mutex
		lat    []time.Duration
		byPath = map[string][]time.Duration{}
		failed int
		shed   int // history requests refused with 429 over the concurrency bound
		wg     sync.WaitGroup
	)
	cpu0 := cpuTime()
	start := time.Now()
	i := 0
	for b.Loop() {
		// Pace on the schedule, not on a ticker, so a late send is caught up.
		if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		path := paths[i%len(paths)]
		url := url + path
		i++
		wg.Go(func() {
			t0 := time.Now()
			resp, err := client(path).Get(url)
			ok, busy := err == nil, false
			if ok {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				busy = resp.StatusCode == http.StatusTooManyRequests
				ok = err == nil && (resp.StatusCode == http.StatusOK || busy)
			}
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if busy {
				shed++
				return
			}
			if !ok {
				failed++
				return
			}
			lat = append(lat, d)
			byPath[path] = append(byPath[path], d)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	if failed > 0 {
		b.Fatalf("%d requests failed", failed)
	}
	q := func(lat []time.Duration, p float64) float64 {
		slices.Sort(lat)
		return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(q(lat, 0.50), "p50-ms")
	b.ReportMetric(q(lat, 0.99), "p99-ms")
	b.ReportMetric(q(lat, 0.999), "p99.9-ms")
	b.ReportMetric(100*float64(shed)/float64(len(lat)+shed), "shed-%")
	// The process's CPU (server, client and monitoring loop) per second of load: what
	// the load costs, whatever else the machine runs; latencies are not.
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu-%")
	for _, p := range paths {
		if l := byPath[p]; len(l) > 0 {
			b.ReportMetric(q(l, 0.99), "p99-ms:"+endpointName(p))
		}
	}
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// endpointName is a path as a metric unit: no spaces, short.
func endpointName(p string) string {
	p = strings.TrimPrefix(strings.TrimPrefix(p, "/api/v1"), "/clusters/local")
	return strings.NewReplacer("?", "", "&", ",", "/", "_").Replace(strings.TrimPrefix(p, "/"))
}

// seedHistory fills st with a day of history, a check and a snapshot every 10 s (copies
// of the newest the service wrote), rolls it up where the store does, and records 200
// alert transitions of the engine's form.
func seedHistory(b *testing.B, st store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type flusher interface{ Flush(context.Context) error }
	if f, ok := st.(flusher); ok {
		if err := f.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	hs, err := st.HealthChecks(ctx, store.HistoryQuery{Cluster: "local", Limit: 1})
	if err != nil || len(hs) == 0 {
		b.Fatalf("no health check stored: %v", err)
	}
	ms, err := st.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "local", Limit: 1})
	if err != nil || len(ms) == 0 {
		b.Fatalf("no metric snapshot stored: %v", err)
	}
	end := hs[0].Time.Add(-10 * time.Second)
	var checks []store.HealthCheck
	var snaps []store.MetricSnapshot
	for i := range 8640 {
		h, m := hs[0], ms[0]
		h.Time, m.Time = end.Add(-time.Duration(i)*10*time.Second), end.Add(-time.Duration(i)*10*time.Second)
		checks, snaps = append(checks, h), append(snaps, m)
		if len(checks) == 500 || i == 8639 {
			if err := st.PutHealthChecks(ctx, checks); err != nil {
				b.Fatal(err)
			}
			if err := st.PutMetricSnapshots(ctx, snaps); err != nil {
				b.Fatal(err)
			}
			checks, snaps = checks[:0], snaps[:0]
			if f, ok := st.(flusher); ok {
				if err := f.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	type maintainer interface {
		Maintain(context.Context, time.Time) error
	}
	if m, ok := st.(maintainer); ok {
		if err := m.Maintain(ctx, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 100 {
		fp := fmt.Sprintf("bench%03d", i)
		at := end.Add(-time.Duration(100-i) * time.Minute)
		data := fmt.Sprintf(`{"alert":{"fingerprint":%q,"name":"BenchAlert","severity":"warning","state":"firing",
			"labels":{"cluster":"local","i":"%d"},"summary":"bench","startsAt":%q,"activeAt":%q},"rule":"BenchAlert"}`,
			fp, i, at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		if err := st.PutAlerts(ctx, []store.Alert{{Fingerprint: fp, Cluster: "local", State: "firing", ActiveAt: at, FiredAt: at,
			Data: []byte(data)}}, nil); err != nil {
			b.Fatal(err)
		}
		if err := st.PutAlerts(ctx, nil, []string{fp}); err != nil { // resolved
			b.Fatal(err)
		}
	}
}
