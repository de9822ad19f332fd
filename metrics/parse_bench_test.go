package metrics

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
)

// realMetrics is what a real etcd 3.7.3 member served after a few hundred requests:
// about 180 KB, 133 families, 1582 samples (765 of them grpc_server_handled_total).
const (
	realMetricsText  = "testdata/etcd-3.7.3.metrics.txt"
	realMetricsProto = "testdata/etcd-3.7.3.metrics.pb"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkScrapeMember is the collector's cost per member per collection, as far as
// /metrics goes: one HTTP GET of a real member's body from a local server, parsed and
// turned into a MemberMetrics (rates against the previous scrape included). The probes
// are gRPC round trips whose cost is etcd's, not the parser's.
func BenchmarkScrapeMember(b *testing.B) {
	body := readTestdata(b, realMetricsText)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	hc := memberhttp.NewClients(nil)
	defer hc.Close()
	ctx := context.Background()
	var prev *raw
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p, _, err := scrape(ctx, hc, srv.URL, false)
		if err != nil {
			b.Fatal(err)
		}
		var m MemberMetrics
		prev = fill(&m, p, time.Now(), prev)
	}
}

// BenchmarkParse compares ways to read the same real body: the collector's streaming
// parser, which reads only the families it uses, against a full parse with expfmt of the
// text format and of the protobuf format (what etcd serves when asked for it).
func BenchmarkParse(b *testing.B) {
	text := readTestdata(b, realMetricsText)
	proto := readTestdata(b, realMetricsProto)
	b.Run("stream-text", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			if _, err := parse(bytes.NewReader(text), MaxScrapeBytes); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("expfmt-text", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			p := expfmt.NewTextParser(model.UTF8Validation)
			if _, err := p.TextToMetricFamilies(bytes.NewReader(text)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("expfmt-protobuf", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(proto)))
		for b.Loop() {
			dec := expfmt.NewDecoder(bytes.NewReader(proto), expfmt.NewFormat(expfmt.TypeProtoDelim))
			for {
				var f dto.MetricFamily
				if err := dec.Decode(&f); err != nil {
					break
				}
			}
		}
	})
}

// BenchmarkHistoryMemory reports the heap one member's entry holds in the history, with
// a real member's body parsed each time (the bucket counts change between snapshots, as
// they do under load).
func BenchmarkHistoryMemory(b *testing.B) {
	body := readTestdata(b, realMetricsText)
	for b.Loop() {
		const n = 1000
		hist := make([]*Snapshot, 0, n)
		var prev *raw
		before := heapInUse()
		for i := range n {
			p, err := parse(bytes.NewReader(body), MaxScrapeBytes)
			if err != nil {
				b.Fatal(err)
			}
			p.hists[hFsync].buckets[0].count += uint64(i) // a new fsync every time
			m := MemberMetrics{ID: 0x8e9e05c52164694d, Name: "m0", Endpoint: "http://127.0.0.1:2379", MetricsURL: "http://127.0.0.1:2379/metrics"}
			prev = fill(&m, p, time.Now(), prev)
			hist = append(hist, &Snapshot{Time: time.Now(), Members: []MemberMetrics{m}})
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "B/member-snapshot")
		runtime.KeepAlive(hist)
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
