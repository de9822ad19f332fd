package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

// hostileCodes is a body with gRPC's codes, a few odd ones (escaped, invalid UTF-8,
// empty, none at all) and n distinct codes of size bytes each, all unary: what a
// member that makes up label values may serve. Each odd or made-up code has 1 call, and
// gRPC's code i has i+1.
func hostileCodes(n, size int) []byte {
	var b bytes.Buffer
	b.WriteString("etcd_server_has_leader 1\netcd_mvcc_put_total 42\n")
	for i, c := range grpcCodes {
		fmt.Fprintf(&b, "grpc_server_handled_total{grpc_code=%q,grpc_method=\"Range\",grpc_type=\"unary\"} %d\n", c, i+1)
	}
	b.WriteString(`grpc_server_handled_total{grpc_code="O\"K\\",grpc_type="unary"} 1` + "\n")
	b.WriteString("grpc_server_handled_total{grpc_code=\"\xff\",grpc_type=\"unary\"} 1\n")
	b.WriteString(`grpc_server_handled_total{grpc_code="",grpc_type="unary"} 1` + "\n")
	b.WriteString(`grpc_server_handled_total{grpc_type="unary"} 1` + "\n")
	b.WriteString(`grpc_server_handled_total{grpc_code="ok",grpc_type="unary"} 1` + "\n")
	b.WriteString(`grpc_server_handled_total{grpc_code="OK ",grpc_type="unary"} 1` + "\n")
	long := strings.Repeat("x", size)
	for i := range n {
		fmt.Fprintf(&b, "grpc_server_handled_total{grpc_code=\"%02d%s\",grpc_type=\"unary\"} 1\n", i, long)
		fmt.Fprintf(&b, "grpc_server_handled_total{grpc_code=\"%02d%s\",grpc_type=\"bidi_stream\"} 1\n", i, long)
	}
	return b.Bytes()
}

// A member that makes up grpc_code values, as long as a line may be, has them counted as
// Other: a snapshot holds at most gRPC's 17 codes and Other, whose names are the same
// constant strings in every snapshot, however many values and bytes the member sends.
// The calls still add up to the member's unary requests, which the gRPC error-rate rule
// takes as its total.
func TestParseGRPCCodesBounded(t *testing.T) {
	// 40 made-up codes of 60 KB: with gRPC's 17 and the odd ones, fewer distinct values
	// than a bound on their number would refuse, and 2.4 MB of label values in one
	// snapshot if they were kept.
	const made = 40
	body := hostileCodes(made, 60000)
	p, err := parse(bytes.NewReader(body), MaxScrapeBytes)
	require.NoError(t, err)
	var m MemberMetrics
	fill(&m, p, time.Now(), nil)

	keyBytes := 0
	for k := range m.GRPCHandled {
		keyBytes += len(k)
	}
	require.LessOrEqual(t, keyBytes, nCodes*len("FailedPrecondition"), "the codes' names are bounded")
	want := map[string]float64{otherCode: made + 6}
	for i, c := range grpcCodes {
		want[c] = float64(i + 1)
	}
	assert.Equal(t, want, m.GRPCHandled)
	var sum float64
	for k, v := range m.GRPCHandled {
		sum += v
		shared := k == otherCode && unsafe.StringData(k) == unsafe.StringData(otherCode)
		for _, c := range grpcCodes {
			shared = shared || unsafe.StringData(k) == unsafe.StringData(c)
		}
		assert.True(t, shared, "code %.20q is a constant, not a copy made by the scrape", k)
	}
	assert.Equal(t, m.Totals.Requests, sum, "every unary call is counted under one code")
	j, err := json.Marshal(m.GRPCHandled)
	require.NoError(t, err)
	assert.Less(t, len(j), 1024, "a snapshot's codes encode in a few hundred bytes")

	// Any number of made-up values: still one Other, and no error.
	p, err = parse(bytes.NewReader(hostileCodes(500, 100)), MaxScrapeBytes)
	require.NoError(t, err)
	assert.Len(t, p.byCode(), nCodes)
	assert.Equal(t, float64(500+6), p.byCode()[otherCode])
}

// The codes kept are exactly gRPC's, with the names go-grpc-middleware gives them
// (codes.Code's String), each at its own index.
func TestGRPCCodeNames(t *testing.T) {
	require.Len(t, grpcCodes, 17)
	for i, c := range grpcCodes {
		assert.Equal(t, codes.Code(i).String(), c)
		assert.Equal(t, i, codeIndex([]byte(c)), c)
		assert.Equal(t, c, codeName(i))
	}
	assert.Equal(t, otherCode, codeName(codeOther))
	for _, c := range []string{"", "ok", "OK ", "Other", "Code(17)", "Unavailable\x00", strings.Repeat("x", 1000)} {
		assert.Equal(t, codeOther, codeIndex([]byte(c)), "%q", c)
	}
}

// histBody is a member's body with the WAL fsync histogram given by its bucket lines,
// and a sound backend commit histogram, so that what happens to one can be told from
// the other.
func histBody(fsyncBuckets ...string) string {
	var b strings.Builder
	b.WriteString("etcd_server_has_leader 1\netcd_mvcc_put_total 42\netcd_mvcc_db_total_size_in_bytes 4096\n")
	for _, l := range fsyncBuckets {
		b.WriteString("etcd_disk_wal_fsync_duration_seconds_bucket" + l + "\n")
	}
	b.WriteString("etcd_disk_wal_fsync_duration_seconds_sum 1\n" +
		"etcd_disk_wal_fsync_duration_seconds_count 10\n" +
		"etcd_disk_backend_commit_duration_seconds_bucket{le=\"0.001\"} 5\n" +
		"etcd_disk_backend_commit_duration_seconds_bucket{le=\"0.002\"} 10\n" +
		"etcd_disk_backend_commit_duration_seconds_bucket{le=\"+Inf\"} 10\n" +
		"etcd_disk_backend_commit_duration_seconds_sum 0.01\n" +
		"etcd_disk_backend_commit_duration_seconds_count 10\n")
	return b.String()
}

// A histogram with a bucket bound that is a number but no bound of seconds (negative,
// NaN, -Inf, or over maxBound) is left out of the member's snapshot, as if the member
// did not serve it, wherever the bucket is among its lines: its quantiles would be
// negative or overflowing durations (a bound of 1e300 made a P99 of minus 292 years),
// which hide the member's latency from the alert rules. The member's other numbers and
// histograms stay. Bounds from 0 to maxBound, and +Inf, are a histogram's.
func TestParseHistogramBoundsOutOfRange(t *testing.T) {
	for _, le := range []string{"1e300", "-1", "-0.001", "NaN", "-Inf", "1e7", "1000000.1", "1.7976931348623157e308"} {
		for _, at := range []string{"first", "middle", "last"} {
			t.Run(le+"/"+at, func(t *testing.T) {
				bad := fmt.Sprintf("{le=%q} 10", le)
				lines := []string{`{le="0.001"} 2`, `{le="0.008"} 6`, `{le="+Inf"} 10`}
				switch at {
				case "first":
					lines = append([]string{bad}, lines...)
				case "middle":
					lines = append(lines[:2:2], bad, lines[2])
				default:
					lines = append(lines, bad)
				}
				p, err := parse(strings.NewReader(histBody(lines...)), MaxScrapeBytes)
				require.NoError(t, err, "the scrape stands")
				assert.Equal(t, 1, p.dropped, "the histogram is counted as dropped")
				var m MemberMetrics
				fill(&m, p, time.Now(), nil)
				assert.Equal(t, Histogram{}, m.WALFsync, "left out, as if absent")
				assert.Equal(t, uint64(10), m.BackendCommit.Count, "the other histogram stays")
				assert.Equal(t, time.Millisecond, m.BackendCommit.P50)
				assert.Equal(t, int64(4096), m.DB.Size, "the other numbers stay")
				assert.Equal(t, float64(42), m.Totals.Puts)
				assert.True(t, m.Raft.HasLeader)
				_, err = json.Marshal(&m)
				assert.NoError(t, err)
			})
		}
	}

	for name, tc := range map[string]struct {
		lines    []string
		p50, p99 time.Duration
	}{
		"zero":     {[]string{`{le="0"} 5`, `{le="+Inf"} 10`}, 0, 0},
		"minus 0":  {[]string{`{le="-0"} 5`, `{le="0.004"} 10`, `{le="+Inf"} 10`}, 0, 3920 * time.Microsecond},
		"maxBound": {[]string{`{le="1e6"} 10`, `{le="+Inf"} 10`}, 500000 * time.Second, 990000 * time.Second},
		"only Inf": {[]string{`{le="+Inf"} 10`}, 0, 0},
	} {
		p, err := parse(strings.NewReader(histBody(tc.lines...)), MaxScrapeBytes)
		require.NoError(t, err, name)
		assert.Zero(t, p.dropped, name)
		var m MemberMetrics
		fill(&m, p, time.Now(), nil)
		assert.Equal(t, uint64(10), m.WALFsync.Count, name)
		assert.Equal(t, tc.p50, m.WALFsync.P50, name)
		assert.InDelta(t, float64(tc.p99), float64(m.WALFsync.P99), float64(time.Microsecond), name)
		for _, b := range m.WALFsync.Buckets {
			assert.False(t, math.Signbit(b.UpperBound), "%s: bound %g", name, b.UpperBound)
		}
	}
}

// Whatever bounds and counts a member serves, each scrape's and each window's quantiles
// are durations from 0 to maxBound, never negative or overflowing.
func TestQuantilesWithinBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 5))
	bound := func() string {
		switch r.IntN(12) {
		case 0:
			return "-1"
		case 1:
			return "1e300"
		case 2:
			return "NaN"
		case 3:
			return "-Inf"
		case 4:
			return "+Inf"
		case 5:
			return fmtFloat(maxBound * (1 + r.Float64()))
		case 6:
			return fmtFloat(maxBound * r.Float64())
		}
		return fmtFloat(math.Ldexp(r.Float64(), -r.IntN(20)))
	}
	ok := func(what string, d time.Duration) {
		t.Helper()
		if d < 0 || d > time.Duration(maxBound)*time.Second {
			t.Errorf("%s: %v out of [0, %v s]", what, d, maxBound)
		}
	}
	var prev *raw
	var older Histogram
	for i := range 500 {
		var lines []string
		for range 1 + r.IntN(6) {
			lines = append(lines, fmt.Sprintf("{le=%q,s=\"%d\"} %d", bound(), r.IntN(3), r.IntN(100)))
		}
		body := histBody(lines...)
		p, err := parse(strings.NewReader(body), MaxScrapeBytes)
		require.NoError(t, err, body)
		var m MemberMetrics
		prev = fill(&m, p, time.Now(), prev)
		for _, h := range []Histogram{m.WALFsync, m.BackendCommit} {
			ok(fmt.Sprintf("#%d P50 of\n%s", i, body), h.P50)
			ok(fmt.Sprintf("#%d P99 of\n%s", i, body), h.P99)
			assert.GreaterOrEqual(t, h.Over16ms, 0.0)
			assert.LessOrEqual(t, h.Over16ms, 1.0)
		}
		for _, q := range []float64{0, 0.5, 0.99, 1} {
			v, _ := WindowQuantile(q, older, m.WALFsync)
			ok(fmt.Sprintf("#%d window q%g", i, q), seconds(v))
			ok(fmt.Sprintf("#%d q%g", i, q), seconds(Quantile(q, m.WALFsync.Buckets)))
		}
		older = m.WALFsync
	}
}

func fmtFloat(f float64) string { return fmt.Sprint(f) }

// FuzzParse checks what holds for any body the parser accepts: the snapshot encodes as
// JSON, its gRPC codes are gRPC's or Other, its quantiles are durations from 0 to
// maxBound, and its buckets are cumulative with bounds from 0 up, +Inf last.
func FuzzParse(f *testing.F) {
	f.Add(histBody(`{le="1e300"} 10`, `{le="+Inf"} 10`))
	f.Add(histBody(`{le="-1"} 10`, `{le="+Inf"} 10`))
	f.Add(histBody(`{le="0.001"} 3`, `{le="NaN"} 1`, `{le="+Inf"} 10`))
	f.Add(histBody(`{le="0.004"} 7`, `{le="0.001"} 9`, `{le="+Inf"} 10`))
	f.Add(string(hostileCodes(3, 10)))
	f.Add(string(readTestdata(f, realMetricsText)))
	f.Fuzz(func(t *testing.T, body string) {
		p, err := parse(strings.NewReader(body), MaxScrapeBytes)
		if err != nil {
			return
		}
		var m MemberMetrics
		prev := fill(&m, p, time.Now(), nil)
		m2 := m
		fill(&m2, p, prev.time.Add(time.Second), prev)
		for _, m := range []MemberMetrics{m, m2} {
			if _, err := json.Marshal(&m); err != nil {
				t.Fatal(err)
			}
			if len(m.GRPCHandled) > nCodes {
				t.Fatalf("%d codes", len(m.GRPCHandled))
			}
			for k := range m.GRPCHandled {
				if codeIndex([]byte(k)) == codeOther && k != otherCode {
					t.Fatalf("code %q", k)
				}
			}
			for _, h := range []Histogram{m.WALFsync, m.BackendCommit, m.PeerRTT} {
				for _, d := range []time.Duration{h.P50, h.P99} {
					if d < 0 || d > time.Duration(maxBound)*time.Second {
						t.Fatalf("quantile %v", d)
					}
				}
				for i, b := range h.Buckets {
					if !(b.UpperBound >= 0) || b.UpperBound > maxBound && !math.IsInf(b.UpperBound, 1) ||
						i > 0 && (b.UpperBound <= h.Buckets[i-1].UpperBound || b.Count < h.Buckets[i-1].Count) {
						t.Fatalf("buckets %v", h.Buckets)
					}
				}
			}
		}
	})
}
