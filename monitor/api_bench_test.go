package monitor_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

// BenchmarkAPIStatusAt1000RPS drives the status endpoints over loopback HTTP at 1,000
// requests per second, open loop (a request is sent every millisecond whether or not the
// previous ones have answered), while the service monitors the shared node every second.
// It reports latency percentiles and the rate achieved; run it with -benchtime=5000x
// for five seconds of load.
func BenchmarkAPIStatusAt1000RPS(b *testing.B) {
	cli, err := etcdtest.NewClient()
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: cli}},
		monitor.WithHealthInterval(time.Second), monitor.WithMetricsInterval(time.Second))
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

	paths := []string{"/health", "/api/v1/cluster/status", "/api/v1/cluster/members", "/api/v1/cluster/leader", "/api/v1/alerts"}
	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed int
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
			ok := err == nil
			if ok {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok = err == nil && resp.StatusCode == http.StatusOK
			}
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
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
}
