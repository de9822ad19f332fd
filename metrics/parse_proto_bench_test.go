//go:build unix

package metrics

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
)

// formats are a real member's body in each format (fetched one after the other: only
// process_cpu_seconds_total differs), with the parser of each.
var formats = []struct {
	name, file, contentType string
	parse                   func(io.Reader, int64) (*parsed, error)
}{
	{"text", realMetricsText, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores", parse},
	{"protobuf", realMetricsProto, acceptProto + "; escaping=underscores", parseProto},
}

// processCPU is the process's user and system CPU time: on a loaded machine the time a
// benchmark takes says more about the other processes than about the code.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per iteration since t0 (of the whole process: the
// benchmark's goroutine, the garbage collector and, for a scrape, the local server).
func reportCPU(b *testing.B, t0 time.Duration) {
	b.ReportMetric(float64(processCPU()-t0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// BenchmarkParseFormats reads the same real member's /metrics in each format with the
// collector's parsers.
func BenchmarkParseFormats(b *testing.B) {
	for _, f := range formats {
		body := readTestdata(b, f.file)
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			t0 := processCPU()
			for b.Loop() {
				if _, err := f.parse(bytes.NewReader(body), MaxScrapeBytes); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, t0)
		})
	}
}

// BenchmarkScrapeMemberFormats is BenchmarkScrapeMember for each format: an HTTP GET of
// the body from a local server that serves it, parsed and turned into a MemberMetrics.
func BenchmarkScrapeMemberFormats(b *testing.B) {
	for _, f := range formats {
		body := readTestdata(b, f.file)
		b.Run(f.name, func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", f.contentType)
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			hc := memberhttp.NewClients(nil)
			defer hc.Close()
			ctx := context.Background()
			var prev *raw
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			t0 := processCPU()
			for b.Loop() {
				p, _, err := scrape(ctx, hc, srv.URL, false)
				if err != nil {
					b.Fatal(err)
				}
				var m MemberMetrics
				prev = fill(&m, p, time.Now(), prev)
			}
			reportCPU(b, t0)
		})
	}
}
