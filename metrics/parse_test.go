package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The streaming parser reads a real member's body to the same values as a full parse
// with expfmt, family by family.
func TestParseAgreesWithExpfmt(t *testing.T) {
	body := readTestdata(t, realMetricsText)
	p, err := parse(bytes.NewReader(body), MaxScrapeBytes)
	require.NoError(t, err)
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)

	// Not served by a single member: node_filesystem_* come from a node exporter placed
	// beside etcd, and the peer histogram appears once a member has peers.
	absent := map[string]bool{"node_filesystem_avail_bytes": true, "node_filesystem_size_bytes": true,
		"etcd_network_peer_round_trip_time_seconds": true}
	for name, f := range families {
		if absent[name] {
			continue
		}
		fam, ok := fams[name]
		require.True(t, ok, "%s is in a real etcd's /metrics (else the collector reads a name that does not exist)", name)
		switch f.kind {
		case kindSum:
			var want float64
			for _, m := range fam.GetMetric() {
				want += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
			}
			assert.Equal(t, want, p.vals[f.idx], name)
			assert.True(t, p.seen[f.idx], name)
		case kindHist:
			var count uint64
			var sum float64
			for _, m := range fam.GetMetric() {
				count += m.GetHistogram().GetSampleCount()
				sum += m.GetHistogram().GetSampleSum()
			}
			h := p.hists[f.idx].finish()
			assert.Equal(t, count, h.count, name)
			assert.InDelta(t, sum, h.sum, 1e-9, name)
			assert.True(t, math.IsInf(h.buckets[len(h.buckets)-1].upper, 1))
			for i := 1; i < len(h.buckets); i++ {
				assert.Less(t, h.buckets[i-1].upper, h.buckets[i].upper, name)
				assert.LessOrEqual(t, h.buckets[i-1].count, h.buckets[i].count, name)
			}
		}
	}
	var unary, streamStarted, streamHandled float64
	codes := map[string]float64{}
	for _, m := range fams["grpc_server_handled_total"].GetMetric() {
		typ, code := "", ""
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "grpc_type":
				typ = l.GetValue()
			case "grpc_code":
				code = l.GetValue()
			}
		}
		if typ == "unary" {
			unary += m.GetCounter().GetValue()
			if v := m.GetCounter().GetValue(); v != 0 {
				codes[code] += v // codes without calls are left out
			}
		} else {
			streamHandled += m.GetCounter().GetValue()
		}
	}
	for _, m := range fams["grpc_server_started_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "grpc_type" && l.GetValue() != "unary" {
				streamStarted += m.GetCounter().GetValue()
			}
		}
	}
	assert.Positive(t, unary)
	assert.Equal(t, unary, p.unary)
	assert.Equal(t, streamHandled, p.streamHandled)
	assert.Equal(t, streamStarted, p.streamStarted)
	assert.Equal(t, codes, p.byCode())
}

func TestFamilyNames(t *testing.T) {
	names := FamilyNames()
	assert.Len(t, names, len(families))
	assert.True(t, slices.IsSorted(names))
	assert.Contains(t, names, "etcd_server_has_leader")
	assert.Contains(t, names, "etcd_disk_wal_fsync_duration_seconds")
}

// NaN and ±Inf (process_cpu_seconds_total NaN is what some platforms serve) are dropped
// as if the series were absent, so that the snapshot encodes as JSON.
func TestParseDropsNonFinite(t *testing.T) {
	p, err := parse(strings.NewReader(`# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
process_cpu_seconds_total NaN
process_resident_memory_bytes +Inf
process_open_fds -Inf
etcd_mvcc_db_total_size_in_bytes 1e308
etcd_mvcc_put_total 1.7e308
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} NaN
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 3
etcd_disk_wal_fsync_duration_seconds_sum +Inf
etcd_disk_wal_fsync_duration_seconds_count 3
`), MaxScrapeBytes)
	require.NoError(t, err)
	assert.Equal(t, 5, p.dropped)
	assert.False(t, p.seen[sCPU])
	assert.Zero(t, p.vals[sCPU])

	var m MemberMetrics
	prev := fill(&m, p, time.Now(), nil)
	p2, err := parse(strings.NewReader("etcd_server_has_leader 1\netcd_mvcc_db_total_size_in_bytes -1.7e308\netcd_mvcc_put_total 1.7e308\n"), MaxScrapeBytes)
	require.NoError(t, err)
	fill(&m, p2, prev.time.Add(time.Nanosecond), prev)
	snap := &Snapshot{Time: time.Now(), Members: []MemberMetrics{m}}
	_, err = json.Marshal(snap)
	assert.NoError(t, err, "huge finite values make no NaN or infinity either")
	assert.Zero(t, m.DB.GrowthRate, "an infinite rate is reported as 0")

	// Finite values whose sum overflows.
	p3, err := parse(strings.NewReader(`etcd_server_has_leader 1
process_resident_memory_bytes{a="1"} 1.7e308
process_resident_memory_bytes{a="2"} 1.7e308
grpc_server_handled_total{grpc_code="OK",grpc_method="a",grpc_type="unary"} 1.7e308
grpc_server_handled_total{grpc_code="OK",grpc_method="b",grpc_type="unary"} 1.7e308
grpc_server_started_total{grpc_type="bidi_stream"} 1.7e308
grpc_server_started_total{grpc_type="server_stream"} 1.7e308
etcd_disk_wal_fsync_duration_seconds_sum{a="1"} 1.7e308
etcd_disk_wal_fsync_duration_seconds_sum{a="2"} 1.7e308
etcd_disk_wal_fsync_duration_seconds_count 1
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 1
`), MaxScrapeBytes)
	require.NoError(t, err)
	var m3 MemberMetrics
	fill(&m3, p3, time.Now(), nil)
	_, err = json.Marshal(&Snapshot{Members: []MemberMetrics{m3}})
	assert.NoError(t, err, "sums that overflow are dropped")
	assert.Zero(t, m3.Process.RSS)
	assert.Zero(t, m3.WALFsync.Sum)
}

// Malformed lines of the families the collector reads are errors; lines of other
// families are skipped unread, however long or strange.
func TestParseInput(t *testing.T) {
	long := "some_other_metric{x=\"" + strings.Repeat("y", 3*scrapeBufSize) + "\"} 1\n"
	for name, tc := range map[string]struct {
		body string
		err  string
	}{
		"escaped labels": {body: `grpc_server_handled_total{grpc_code="O\"K\\",grpc_method="a\nb",grpc_type="unary"} 2` + "\n"},
		"timestamp":      {body: "etcd_server_has_leader 1 1700000000000\n"},
		"no newline":     {body: "etcd_server_has_leader 1"},
		"crlf and tabs":  {body: "etcd_server_has_leader\t1\r\n"},
		"leading blanks": {body: " \tetcd_server_has_leader 1\n"},
		"blanks, bad":    {body: "  etcd_server_has_leader x\n", err: "bad value"},
		"other long":     {body: long},
		"quoted name":    {body: `{"odd.name"} 1` + "\n"},
		"junk elsewhere": {body: "<html>\n<body>It works!</body>\n"},
		"bad value":      {body: "etcd_server_has_leader one\n", err: "line 1: etcd_server_has_leader: bad value"},
		"no value":       {body: "etcd_server_has_leader\n", err: "no value"},
		"open labels":    {body: `etcd_server_has_leader{a="b" 1` + "\n", err: "label"},
		"unquoted label": {body: `etcd_server_has_leader{a=b} 1` + "\n", err: "not quoted"},
		"bad escape":     {body: `grpc_server_handled_total{grpc_code="\q"} 1` + "\n", err: "bad escape"},
		"bad le":         {body: `etcd_disk_wal_fsync_duration_seconds_bucket{le="x"} 1` + "\n", err: "bad le"},
		"no le":          {body: "etcd_disk_wal_fsync_duration_seconds_bucket 1\n", err: "without le"},
		"negative count": {body: "etcd_disk_wal_fsync_duration_seconds_count -1\n", err: "out of range"},
		"huge count":     {body: "etcd_disk_wal_fsync_duration_seconds_count 1e300\n", err: "out of range"},
		"long wanted":    {body: "etcd_server_has_leader{x=\"" + strings.Repeat("y", scrapeBufSize) + "\"} 1\n", err: "longer than"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(strings.NewReader(tc.body), MaxScrapeBytes)
			if tc.err == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.err)
		})
	}

	p, err := parse(strings.NewReader(`grpc_server_handled_total{grpc_code="O\"K\\",grpc_type="unary"} 2`+"\n"+
		"grpc_server_handled_total{grpc_code=\"\xff\",grpc_type=\"unary\"} 1\n"), MaxScrapeBytes)
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"Other": 3}, p.byCode(), "values other than gRPC's codes are counted as Other")
}

// A hostile member cannot make the parser hold more than its bounds: gRPC codes are
// gRPC's and Other (see TestParseGRPCCodesBounded), bucket bounds are capped, and the body
// is cut at the limit with an error.
func TestParseBounds(t *testing.T) {
	var b strings.Builder
	for i := range 100 {
		b.WriteString(`grpc_server_handled_total{grpc_code="c` + strings.Repeat("x", i) + `",grpc_type="unary"} 1` + "\n")
	}
	p, err := parse(strings.NewReader(b.String()), MaxScrapeBytes)
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"Other": 100}, p.byCode())

	b.Reset()
	for i := range maxBuckets + 1 {
		b.WriteString(`etcd_disk_wal_fsync_duration_seconds_bucket{le="` + string(rune('0'+i%10)) + "." + strings.Repeat("1", i/10+1) + `"} 1` + "\n")
	}
	_, err = parse(strings.NewReader(b.String()), MaxScrapeBytes)
	assert.ErrorContains(t, err, "buckets")

	body := io.MultiReader(strings.NewReader("etcd_server_has_leader 1\n"), &repeatReader{line: []byte("go_goroutines 12\n"), n: 1 << 20})
	_, err = parse(body, 1<<20)
	assert.ErrorIs(t, err, errTooLarge)
	_, err = parse(strings.NewReader(strings.Repeat("x", 100)), 100)
	assert.NoError(t, err, "exactly the limit is fine")
}

// repeatReader yields line until n bytes were read.
type repeatReader struct {
	line []byte
	n    int
	off  int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(b) && r.n > 0 {
		c := copy(b[k:min(len(b), k+r.n)], r.line[r.off:])
		r.off = (r.off + c) % len(r.line)
		k += c
		r.n -= c
	}
	return k, nil
}

// Bucket counts summed over many series saturate at the bound a count has, as the total
// count does, instead of wrapping around to small numbers: a hostile member's
// histogram stays cumulative, its slow share within [0, 1].
func TestParseBucketSumsSaturate(t *testing.T) {
	var b strings.Builder
	b.WriteString("etcd_server_has_leader 1\n")
	for i := range 3000 {
		for _, le := range []string{"0.001", "0.032", "+Inf"} {
			fmt.Fprintf(&b, "etcd_disk_wal_fsync_duration_seconds_bucket{le=%q,s=\"%d\"} %d\n", le, i, maxCount)
		}
		fmt.Fprintf(&b, "etcd_disk_wal_fsync_duration_seconds_count{s=\"%d\"} %d\n", i, maxCount)
	}
	p, err := parse(strings.NewReader(b.String()), MaxScrapeBytes)
	require.NoError(t, err)
	h := p.hists[hFsync].finish()
	require.Len(t, h.buckets, 3)
	for _, bk := range h.buckets {
		assert.Equal(t, uint64(maxCount), bk.count, "bucket le=%g", bk.upper)
	}
	var m MemberMetrics
	fill(&m, p, time.Now(), nil)
	assert.GreaterOrEqual(t, m.WALFsync.Over16ms, 0.0)
	assert.LessOrEqual(t, m.WALFsync.Over16ms, 1.0)

	// Buckets that are not cumulative, or hold more than the count, are made so.
	p, err = parse(strings.NewReader(`etcd_server_has_leader 1
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 100
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.008"} 5
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.032"} 7
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 10
etcd_disk_wal_fsync_duration_seconds_count 10
`), MaxScrapeBytes)
	require.NoError(t, err)
	h = p.hists[hFsync].finish()
	counts := make([]uint64, len(h.buckets))
	for i, bk := range h.buckets {
		counts[i] = bk.count
	}
	assert.Equal(t, []uint64{10, 10, 10, 10}, counts)
	fill(&m, p, time.Now(), nil)
	assert.Zero(t, m.WALFsync.Over16ms)
}
