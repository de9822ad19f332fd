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
	"sync"
	"testing"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
	_ "github.com/etcd-monitor/etcd-monitor/store/postgres" // store type postgres
)

// BenchmarkAPIStatusAt1000RPS drives the status endpoints over loopback HTTP at 1,000
// requests per second, open loop (a request is sent every millisecond whether or not the
// previous ones have answered), while the service monitors the shared node every second.
// It reports latency percentiles and the rate achieved; run it with -benchtime=5000x
// for five seconds of load. The store is none, bbolt, or PostgreSQL when
// ETCD_MONITOR_TEST_POSTGRES_URL names one; with a store, every check and collection is
// written to it and the history requests read it.
func BenchmarkAPIStatusAt1000RPS(b *testing.B) {
	b.Run("store=none", func(b *testing.B) { benchmarkAPI(b, nil) })
	b.Run("store=bbolt", func(b *testing.B) {
		st, err := store.Open(filepath.Join(b.TempDir(), "state.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchmarkAPI(b, st)
	})
	if os.Getenv("ETCD_MONITOR_TEST_POSTGRES_URL") != "" {
		b.Run("store=postgres", func(b *testing.B) {
			st, err := store.OpenConfig(context.Background(), store.Config{Type: "postgres", DSNEnv: "ETCD_MONITOR_TEST_POSTGRES_URL",
				Schema: fmt.Sprintf("bench_api_%d", time.Now().UnixNano())})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			benchmarkAPI(b, st)
		})
	}
}

func benchmarkAPI(b *testing.B, st store.Store) {
	cli, err := etcdtest.NewClient()
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	opts := []monitor.Option{monitor.WithHealthInterval(time.Second), monitor.WithMetricsInterval(time.Second)}
	if st != nil {
		opts = append(opts, monitor.WithStore(st))
	}
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := svc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	go svc.Run(ctx)
	srv := httptest.NewServer(svc)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()

	paths := []string{"/health", "/api/v1/clusters/local/status", "/api/v1/clusters/local/members", "/api/v1/clusters/local/leader",
		"/api/v1/alerts", "/api/v1/clusters/local/history?limit=60"}
	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed int
		shed   int // history requests refused with 429 over the concurrency bound
		wg     sync.WaitGroup
	)
	start := time.Now()
	i := 0
	for b.Loop() {
		// Pace on the schedule, not on a ticker, so a late send is caught up.
		if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		url := srv.URL + paths[i%len(paths)]
		i++
		wg.Go(func() {
			t0 := time.Now()
			resp, err := client.Get(url)
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
			}
			if !ok {
				failed++
				return
			}
			lat = append(lat, d)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed > 0 {
		b.Fatalf("%d requests failed", failed)
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(0.999), "p99.9-ms")
	b.ReportMetric(100*float64(shed)/float64(len(lat)), "shed-%")
}
