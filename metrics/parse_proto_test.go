package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
)

const (
	acceptProto = protoFormat + ";proto=io.prometheus.client.MetricFamily;encoding=delimited"
	acceptText  = "text/plain;version=0.0.4"
)

// fetch GETs url asking for one format, and returns the body and its Content-Type.
func fetch(ctx context.Context, hc *memberhttp.Clients, u string, unix bool, accept string) (body []byte, ct string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", accept)
	err = hc.Do(req, unix, func(resp *http.Response) error {
		ct = resp.Header.Get("Content-Type")
		body, err = io.ReadAll(resp.Body)
		return err
	})
	return body, ct, err
}

func isProto(ct string) bool {
	read, err := parser(ct)
	return err == nil && reflect.ValueOf(read).Pointer() == reflect.ValueOf(parseProto).Pointer()
}

// parseBoth parses a body of each format.
func parseBoth(t *testing.T, text, pb []byte) (fromText, fromProto *parsed) {
	t.Helper()
	fromText, err := parse(bytes.NewReader(text), MaxScrapeBytes)
	require.NoError(t, err)
	fromProto, err = parseProto(bytes.NewReader(pb), MaxScrapeBytes)
	require.NoError(t, err)
	return fromText, fromProto
}

// busy makes the shared node's counters and histograms move: puts, ranges, txns and
// deletes, unary and streaming calls.
func busy(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx := etcdtest.Context(t, 20*time.Second)
	prefix := etcdtest.Prefix(t)
	for i := range 20 {
		k := prefix + string(rune('a'+i))
		_, err := cli.Put(ctx, k, "v")
		require.NoError(t, err)
		_, err = cli.Get(ctx, k)
		require.NoError(t, err)
		_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(k), ">", 0)).Then(clientv3.OpDelete(k)).Commit()
		require.NoError(t, err)
	}
	_, err := cli.Get(ctx, prefix+"missing", clientv3.WithSerializable())
	require.NoError(t, err)
	_, err = cli.Put(ctx, prefix+"d", "v")
	require.NoError(t, err)
	_, err = cli.Delete(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wc := cli.Watch(wctx, prefix)
	_, err = cli.Put(ctx, prefix+"w", "v")
	require.NoError(t, err)
	<-wc
}

// A real member's /metrics, asked for in each format, reads the same: the values the
// registry held once, encoded in both formats as the member's handler encodes them, are
// equal to the last bit, and two fetches of the member agree on everything but what moves
// between them by itself (the process's CPU time and memory).
func TestParseProtoAgreesWithTextRealMember(t *testing.T) {
	cli := etcdtest.Client(t)
	busy(t, cli)

	mfs, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	var text, pb bytes.Buffer
	for _, mf := range mfs {
		require.NoError(t, expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain)).Encode(mf))
		require.NoError(t, expfmt.NewEncoder(&pb, expfmt.NewFormat(expfmt.TypeProtoDelim)).Encode(mf))
	}
	fromText, fromProto := parseBoth(t, text.Bytes(), pb.Bytes())
	assert.Equal(t, fromText, fromProto)
	assert.Positive(t, fromProto.vals[sPuts])
	assert.Positive(t, fromProto.vals[sRanges])
	assert.Positive(t, fromProto.vals[sDeletes])
	assert.Positive(t, fromProto.unary)
	assert.Positive(t, fromProto.hists[hFsync].count)

	u, unix := metricsURL(etcdtest.Endpoints())
	hc := memberhttp.NewClients(nil)
	defer hc.Close()
	ctx := etcdtest.Context(t, time.Minute)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		pbBody, ct, err := fetch(ctx, hc, u, unix, acceptProto)
		if !assert.NoError(c, err) {
			return
		}
		assert.True(c, isProto(ct), "the member serves protobuf when asked: %s", ct)
		textBody, ct, err := fetch(ctx, hc, u, unix, acceptText)
		if !assert.NoError(c, err) {
			return
		}
		assert.True(c, strings.HasPrefix(ct, "text/plain"), ct)
		fromText, err := parse(bytes.NewReader(textBody), MaxScrapeBytes)
		if !assert.NoError(c, err) {
			return
		}
		fromProto, err := parseProto(bytes.NewReader(pbBody), MaxScrapeBytes)
		if !assert.NoError(c, err) {
			return
		}
		assert.Positive(c, fromProto.vals[sPuts])
		for _, s := range []slot{sCPU, sRSS} {
			assert.True(c, fromProto.seen[s])
			fromText.vals[s], fromProto.vals[s] = 0, 0
		}
		assert.Equal(c, fromText, fromProto)
	}, 30*time.Second, 100*time.Millisecond)
}

// The families the protobuf parser reads are those with a sample the text parser reads,
// and their names are short enough to be read.
func TestProtoFamilies(t *testing.T) {
	for name := range families {
		assert.Contains(t, protoFamilies, name)
	}
	names := []string{"etcd_disk_wal_fsync_duration_seconds_bucket", "etcd_server_has_leader_sum", "_sum", ""}
	dec := expfmt.NewDecoder(bytes.NewReader(readTestdata(t, realMetricsProto)), expfmt.NewFormat(expfmt.TypeProtoDelim))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
		names = append(names, mf.GetName())
	}
	for _, name := range names {
		_, read := protoFamilies[name]
		any := false
		for _, s := range lineSuffixes {
			_, ok := lookup([]byte(name + s))
			any = any || ok
		}
		assert.Equal(t, any, read, name)
	}
	for name := range protoFamilies {
		assert.LessOrEqual(t, len(name), maxProtoName, name)
	}
}

// constCollector collects fixed metrics.
type constCollector []prometheus.Metric

func (c constCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c {
		ch <- m.Desc()
	}
}

func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

func desc(name string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, "help", labels, nil)
}

// Registries of what a member could serve, served through promhttp in each format, read
// the same: histograms over several series (with and without an explicit +Inf bucket,
// native ones, bounds out of range), gRPC codes made up, NaN and infinities, families the
// collector reads served with another type, and samples named like one of its families'.
func TestParseProtoAgreesWithTextRegistries(t *testing.T) {
	inf := math.Inf(+1)
	for name, register := range map[string]func(reg *prometheus.Registry){
		"etcd-like": func(reg *prometheus.Registry) {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcd_server_has_leader"})
			g.Set(1)
			puts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcd_mvcc_put_total"}, []string{"a"})
			puts.WithLabelValues("x").Add(0.1)
			puts.WithLabelValues("y").Add(0.2) // sums in the same order in both
			puts.WithLabelValues("z").Add(1e15)
			handled := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_handled_total"},
				[]string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"})
			for i, code := range append(grpcCodes[:], "ok", "", "O\"K\\\n", strings.Repeat("x", 10000)) {
				handled.WithLabelValues("unary", "etcdserverpb.KV", "Range", code).Add(float64(i + 1))
				handled.WithLabelValues("bidi_stream", "etcdserverpb.Watch", "Watch", code).Add(float64(2*i + 1))
			}
			started := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_started_total"}, []string{"grpc_type"})
			started.WithLabelValues("unary").Add(100)
			started.WithLabelValues("bidi_stream").Add(7)
			started.WithLabelValues("server_stream").Add(3)
			fsync := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "etcd_disk_wal_fsync_duration_seconds",
				Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
			for i := range 1000 {
				fsync.Observe(float64(i) / 10000)
			}
			commit := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "etcd_disk_backend_commit_duration_seconds",
				Buckets: []float64{0.001, 0.01}, NativeHistogramBucketFactor: 1.1})
			commit.Observe(0.005)
			commit.Observe(0)
			commit.Observe(20)
			peer := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "etcd_network_peer_round_trip_time_seconds",
				Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"To"})
			for i, to := range []string{"a", "b", "c"} {
				for j := range 50 * (i + 1) {
					peer.WithLabelValues(to).Observe(float64(j) / 1000)
				}
			}
			cpu := prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_cpu_seconds_total"})
			cpu.Set(math.NaN())
			rss := prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_resident_memory_bytes"})
			rss.Set(inf)
			fds := prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_open_fds"})
			fds.Set(math.Copysign(0, -1))
			fs := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "node_filesystem_avail_bytes"}, []string{"mountpoint"})
			fs.WithLabelValues("/").Set(10)
			fs.WithLabelValues("/var").Set(20)
			other := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "go_other_total"}, []string{"x"})
			other.WithLabelValues(strings.Repeat("y", 100000)).Inc()
			reg.MustRegister(g, puts, handled, started, fsync, commit, peer, cpu, rss, fds, fs, other)
		},
		"const histograms": func(reg *prometheus.Registry) {
			reg.MustRegister(constCollector{
				prometheus.MustNewConstMetric(desc("etcd_server_has_leader"), prometheus.UntypedValue, 1),
				// An explicit +Inf bucket, below the count: the text format prints it once.
				prometheus.MustNewConstHistogram(desc("etcd_disk_wal_fsync_duration_seconds", "s"), 10, 1.5,
					map[float64]uint64{0.001: 3, 0.002: 5, inf: 9}, "1"),
				prometheus.MustNewConstHistogram(desc("etcd_disk_wal_fsync_duration_seconds", "s"), 4, 0.5,
					map[float64]uint64{0.001: 1, 0.004: 2}, "2"),
				prometheus.MustNewConstHistogram(desc("etcd_disk_backend_commit_duration_seconds"), 1, 0.5,
					map[float64]uint64{1e300: 1}), // a bound out of range
				prometheus.MustNewConstHistogram(desc("etcd_network_peer_round_trip_time_seconds", "To"), 5, 0.5,
					map[float64]uint64{math.Copysign(0, -1): 1, 0.5: maxCount}, "a"),
			})
		},
		"other types": func(reg *prometheus.Registry) {
			reg.MustRegister(constCollector{
				prometheus.MustNewConstMetric(desc("etcd_server_has_leader"), prometheus.GaugeValue, 1),
				// A summary named like a counter the collector reads: the text format
				// writes its quantiles under that name.
				prometheus.MustNewConstSummary(desc("etcd_mvcc_range_total"), 4, 10,
					map[float64]float64{0.5: 2, 0.9: 3}),
				// A histogram named like a gauge: none of its samples has that name.
				prometheus.MustNewConstHistogram(desc("etcd_server_is_leader"), 4, 10, map[float64]uint64{1: 2}),
				// A counter named like a histogram: no sample of the histogram's.
				prometheus.MustNewConstMetric(desc("etcd_disk_wal_fsync_duration_seconds"), prometheus.CounterValue, 3),
				// Gauges named like a histogram's samples: read as its samples.
				prometheus.MustNewConstMetric(desc("etcd_disk_backend_commit_duration_seconds_count"), prometheus.GaugeValue, 7),
				prometheus.MustNewConstMetric(desc("etcd_disk_backend_commit_duration_seconds_bucket", "le"), prometheus.GaugeValue, 5, "0.5"),
				prometheus.MustNewConstMetric(desc("etcd_disk_backend_commit_duration_seconds_bucket", "le"), prometheus.GaugeValue, 7, "+Inf"),
				// A summary named like a histogram: its _sum and _count are the histogram's.
				prometheus.MustNewConstSummary(desc("etcd_network_peer_round_trip_time_seconds"), 4, 10,
					map[float64]float64{0.5: 2}),
			})
		},
		"errors": func(reg *prometheus.Registry) {
			reg.MustRegister(constCollector{
				prometheus.MustNewConstMetric(desc("etcd_server_has_leader"), prometheus.GaugeValue, 1),
				prometheus.MustNewConstHistogram(desc("etcd_disk_wal_fsync_duration_seconds"), 1<<60, 0.5,
					map[float64]uint64{0.001: 1}),
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			register(reg)
			srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			defer srv.Close()
			hc := memberhttp.NewClients(nil)
			defer hc.Close()
			ctx := etcdtest.Context(t, 20*time.Second)
			pb, ct, err := fetch(ctx, hc, srv.URL, false, accept)
			require.NoError(t, err)
			require.True(t, isProto(ct), ct)
			text, ct, err := fetch(ctx, hc, srv.URL, false, acceptText)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(ct, "text/plain"), ct)
			fromText, errText := parse(bytes.NewReader(text), MaxScrapeBytes)
			fromProto, errProto := parseProto(bytes.NewReader(pb), MaxScrapeBytes)
			if name == "errors" {
				assert.ErrorContains(t, errText, "out of range")
				assert.ErrorContains(t, errProto, "out of range")
				return
			}
			require.NoError(t, errText)
			require.NoError(t, errProto)
			assert.Equal(t, fromText, fromProto)
			var m MemberMetrics
			fill(&m, fromProto, time.Now(), nil)
			_, err = json.Marshal(&m)
			assert.NoError(t, err)
		})
	}
}

// Bodies of the protobuf format built field by field.
func pbFamily(fields ...[]byte) []byte {
	msg := bytes.Join(fields, nil)
	return protowire.AppendBytes(nil, msg) // the length, then the message
}

func pbBytes(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func pbString(num protowire.Number, s string) []byte { return pbBytes(num, []byte(s)) }

func pbVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func pbDouble(num protowire.Number, v float64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), math.Float64bits(v))
}

func pbMessage(num protowire.Number, fields ...[]byte) []byte {
	return pbBytes(num, bytes.Join(fields, nil))
}

func pbGauge(v float64, labels ...[]byte) []byte {
	return pbMessage(pbFamilyMetric, append(labels, pbMessage(pbMetricGauge, pbDouble(pbValue, v)))...)
}

func pbLabel(name, value string) []byte {
	return pbMessage(pbMetricLabel, pbString(pbLabelName, name), pbString(pbLabelValue, value))
}

var hasLeader = pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"), pbVarint(pbFamilyType, 1), pbGauge(1))

// marshal encodes families as the protobuf format does.
func marshal(t testing.TB, fams ...*dto.MetricFamily) []byte {
	var out []byte
	for _, f := range fams {
		b, err := proto.Marshal(f)
		require.NoError(t, err)
		out = append(out, protowire.AppendBytes(nil, b)...)
	}
	return out
}

// What no Prometheus client writes, in a family the collector reads, is an error; in a
// family it does not read, it is skipped unread. Either way the parser holds no more than
// its buffer, whatever lengths the body claims.
func TestParseProtoHostile(t *testing.T) {
	fsyncName := pbString(pbFamilyName, "etcd_disk_wal_fsync_duration_seconds")
	histType := pbVarint(pbFamilyType, 4)
	bucket := func(upper float64, count uint64) []byte {
		return pbMessage(pbHistBucket, pbVarint(pbBucketCount, count), pbDouble(pbBucketUpper, upper))
	}
	var manyBuckets [][]byte
	for i := range maxBuckets + 1 {
		manyBuckets = append(manyBuckets, bucket(float64(i)/1000, 1))
	}
	nested := []byte{}
	for range 20000 { // groups nested deeper than protobuf's recursion limit
		nested = protowire.AppendTag(nested, 9, protowire.StartGroupType)
	}
	huge := protowire.AppendVarint(nil, 1<<62)
	for name, tc := range map[string]struct {
		body string
		err  string // "" when the body is read; errTooLarge's text for errTooLarge
	}{
		"empty":                {body: ""},
		"has leader":           {body: string(hasLeader)},
		"huge family":          {body: string(huge) + "xx", err: errTooLarge.Error()},
		"family over the body": {body: string(protowire.AppendVarint(nil, 1000)) + "xx", err: "ends inside"},
		"bad varint":           {body: strings.Repeat("\xff", 11), err: "malformed"},
		"cut varint":           {body: "\xff\xff", err: "ends inside"},
		"text":                 {body: "etcd_server_has_leader 1\n", err: "family"},
		"unused family, huge metric": {body: string(pbFamily(pbString(pbFamilyName, "go_other"),
			pbMessage(pbFamilyMetric, pbLabel("x", strings.Repeat("y", 1<<20))))) + string(hasLeader)},
		"unused family, garbage": {body: string(pbFamily(pbString(pbFamilyName, "go_other"),
			[]byte("\xff\xff\xff\xff garbage"))) + string(hasLeader)},
		"unused family, long name": {body: string(pbFamily(pbString(pbFamilyName, strings.Repeat("n", 100000)),
			pbGauge(1))) + string(hasLeader)},
		"used family, huge metric": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"),
			pbGauge(1, pbLabel("x", strings.Repeat("y", scrapeBufSize))))), err: "longer than"},
		"huge label value": {body: string(pbFamily(pbString(pbFamilyName, "grpc_server_handled_total"),
			pbMessage(pbFamilyMetric, pbLabel("grpc_type", "unary"), pbLabel("grpc_code", strings.Repeat("y", 60000)),
				pbMessage(pbMetricCounter, pbDouble(pbValue, 1)))))},
		"metric over the family": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"),
			protowire.AppendVarint(protowire.AppendTag(nil, pbFamilyMetric, protowire.BytesType), 100))), err: "malformed"},
		"name after metrics": {body: string(pbFamily(pbVarint(pbFamilyType, 1), pbGauge(1),
			pbString(pbFamilyName, "etcd_server_has_leader"))), err: "name after"},
		"type after metrics": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"), pbGauge(1),
			pbVarint(pbFamilyType, 1))), err: "type after"},
		"type after metrics, unnamed": {body: string(pbFamily(pbGauge(1), pbVarint(pbFamilyType, 1),
			pbString(pbFamilyName, "etcd_server_has_leader"))), err: "name after"},
		"unnamed": {body: string(pbFamily(pbVarint(pbFamilyType, 1), pbGauge(1)))},
		"name repeated": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"),
			pbString(pbFamilyName, "etcd_server_is_leader"), pbVarint(pbFamilyType, 1), pbGauge(1))), err: "repeated"},
		"group in family": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"),
			protowire.AppendTag(nil, 9, protowire.StartGroupType))), err: "malformed"},
		"nested groups in metric": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"),
			pbVarint(pbFamilyType, 1), pbMessage(pbFamilyMetric, nested))), err: "malformed"},
		"garbage in metric": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"),
			pbBytes(pbFamilyMetric, []byte("\x0a\xff")))), err: "malformed"},
		"garbage in label": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"),
			pbMessage(pbFamilyMetric, pbBytes(pbMetricLabel, []byte("\x0a\x05ab"))))), err: "malformed"},
		"garbage in bucket": {body: string(pbFamily(fsyncName, histType,
			pbMessage(pbFamilyMetric, pbMessage(pbMetricHistogram, pbBytes(pbHistBucket, []byte("\x11\x00")))))), err: "malformed"},
		"wrong type, used name": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"), histType,
			pbMessage(pbFamilyMetric, pbMessage(pbMetricHistogram, pbVarint(pbHistCount, 1), bucket(1, 1)))))},
		"value missing": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"), pbVarint(pbFamilyType, 1),
			pbMessage(pbFamilyMetric, pbMessage(pbMetricCounter, pbDouble(pbValue, 1)))))},
		"unknown type": {body: string(pbFamily(pbString(pbFamilyName, "etcd_server_has_leader"), pbVarint(pbFamilyType, 1<<40),
			pbMessage(pbFamilyMetric, pbMessage(pbMetricCounter, pbDouble(pbValue, 1)))))},
		"too many buckets": {body: string(pbFamily(fsyncName, histType,
			pbMessage(pbFamilyMetric, pbMessage(pbMetricHistogram, manyBuckets...)))), err: "more than"},
		"huge count": {body: string(pbFamily(fsyncName, histType,
			pbMessage(pbFamilyMetric, pbMessage(pbMetricHistogram, pbVarint(pbHistCount, math.MaxUint64))))), err: "out of range"},
		"bound out of range": {body: string(pbFamily(fsyncName, histType,
			pbMessage(pbFamilyMetric, pbMessage(pbMetricHistogram, pbVarint(pbHistCount, 1), bucket(math.NaN(), 1)))))},
		"bucket without bound": {body: string(pbFamily(fsyncName, histType,
			pbMessage(pbFamilyMetric, pbMessage(pbMetricHistogram, pbVarint(pbHistCount, 1),
				pbMessage(pbHistBucket, pbVarint(pbBucketCount, 1))))))},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := parseProto(strings.NewReader(tc.body), MaxScrapeBytes)
			switch tc.err {
			case "":
				require.NoError(t, err)
				var m MemberMetrics
				fill(&m, p, time.Now(), nil)
				_, err := json.Marshal(&m)
				assert.NoError(t, err)
			case errTooLarge.Error():
				assert.ErrorIs(t, err, errTooLarge)
			default:
				assert.ErrorContains(t, err, tc.err)
				assert.NotErrorIs(t, err, errTooLarge)
			}
		})
	}

	t.Run("values", func(t *testing.T) {
		p, err := parseProto(strings.NewReader(string(pbFamily(pbString(pbFamilyName, "grpc_server_handled_total"),
			pbMessage(pbFamilyMetric, pbLabel("grpc_type", "unary"), pbLabel("grpc_code", strings.Repeat("y", 60000)),
				pbMessage(pbMetricCounter, pbDouble(pbValue, 1))),
			pbMessage(pbFamilyMetric, pbLabel("grpc_type", "unary"), pbLabel("grpc_code", "OK"),
				// Repeated submessages merge: the last value wins.
				pbMessage(pbMetricCounter, pbDouble(pbValue, 1)), pbMessage(pbMetricCounter, pbDouble(pbValue, 5)),
				pbMessage(pbMetricCounter))))), MaxScrapeBytes)
		require.NoError(t, err)
		assert.Equal(t, map[string]float64{"OK": 5, otherCode: 1}, p.byCode())
		assert.Equal(t, float64(6), p.unary)
	})

	// A body over the limit, in families the collector does not read.
	var big []byte
	other := pbFamily(pbString(pbFamilyName, "go_other"), pbGauge(1, pbLabel("x", strings.Repeat("y", 1000))))
	for len(big) <= 1<<20 {
		big = append(big, other...)
	}
	_, err := parseProto(bytes.NewReader(big), 1<<20)
	assert.ErrorIs(t, err, errTooLarge)
	_, err = parseProto(bytes.NewReader(big[:1<<20]), 1<<20)
	assert.ErrorContains(t, err, "ends inside", "cut inside a family, under the limit")
	_, err = parseProto(bytes.NewReader(big[:len(other)*10]), int64(len(other)*10))
	assert.NoError(t, err, "exactly the limit is fine")
}

// What a body of hostile lengths costs the parser does not grow with them.
func TestParseProtoAllocations(t *testing.T) {
	realBody := readTestdata(t, realMetricsProto)
	huge := string(pbFamily(pbString(pbFamilyName, "go_other"), pbMessage(pbFamilyMetric, pbLabel("x", strings.Repeat("y", 4<<20)))))
	used := string(pbFamily(pbString(pbFamilyName, "grpc_server_handled_total"),
		pbMessage(pbFamilyMetric, pbLabel("grpc_type", "unary"), pbLabel("grpc_code", strings.Repeat("y", 60000)),
			pbMessage(pbMetricCounter, pbDouble(pbValue, 1)))))
	claims := string(protowire.AppendVarint(nil, MaxScrapeBytes)) + "x"
	if _, err := parseProto(bytes.NewReader(realBody), MaxScrapeBytes); err != nil { // a reader kept
		t.Fatal(err)
	}
	// The counts are the process's: the package's in-process etcd allocates meanwhile, so
	// they get slack; what a hostile length would cost (a copy of megabytes) is far more.
	realAllocs := testing.AllocsPerRun(10, func() { _, _ = parseProto(bytes.NewReader(realBody), MaxScrapeBytes) })
	for name, body := range map[string]string{"huge unused": huge, "huge label": used, "claims 16 MiB": claims} {
		allocs := testing.AllocsPerRun(10, func() { _, _ = parseProto(strings.NewReader(body), MaxScrapeBytes) })
		assert.LessOrEqual(t, allocs, realAllocs+10, name)
		assert.Less(t, bytesPerRun(func() { _, _ = parseProto(strings.NewReader(body), MaxScrapeBytes) }), uint64(1<<20), name)
	}
	assert.LessOrEqual(t, realAllocs, float64(30), "a real member's body")
}

// bytesPerRun returns the bytes the process allocated per call of fn, over 10 calls.
func bytesPerRun(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / 10
}

// FuzzParseProto checks what holds for any body the protobuf parser reads, as FuzzParse
// does for the text format; and that a registry's families, encoded in both formats, read
// the same.
func FuzzParseProto(f *testing.F) {
	f.Add(readTestdata(f, realMetricsProto))
	f.Add(hasLeader)
	f.Add(marshal(f, &dto.MetricFamily{Name: proto.String("etcd_disk_wal_fsync_duration_seconds"),
		Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: &dto.Histogram{
			SampleCount: proto.Uint64(10), SampleSum: proto.Float64(1),
			Bucket: []*dto.Bucket{{UpperBound: proto.Float64(0.001), CumulativeCount: proto.Uint64(4)},
				{UpperBound: proto.Float64(1e300), CumulativeCount: proto.Uint64(5)}}}}}}))
	f.Fuzz(checkProtoBody)
}

func checkProtoBody(t *testing.T, body []byte) {
	{
		p, err := parseProto(bytes.NewReader(body), MaxScrapeBytes)
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
		}
		// What protobuf reads of a body the parser read, written in the text format by
		// expfmt, reads the same, when expfmt writes it (it refuses a family whose metrics
		// lack the type's value) and the families are named before their metrics.
		var fams []*dto.MetricFamily
		for b := body; len(b) > 0; {
			msg, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return
			}
			b = b[n:]
			var mf dto.MetricFamily
			if proto.Unmarshal(msg, &mf) != nil {
				return
			}
			fams = append(fams, &mf)
		}
		var text bytes.Buffer
		for _, mf := range fams {
			if len(mf.Metric) == 0 {
				continue
			}
			if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
				return
			}
		}
		fromText, err := parse(&text, MaxScrapeBytes)
		if err != nil {
			return // a name with a newline, say
		}
		if !equalParsed(fromText, p) {
			t.Fatalf("text %+v\nprotobuf %+v", fromText, p)
		}
	}
}

// equalParsed compares two parses, NaN equal to NaN.
func equalParsed(a, b *parsed) bool {
	ja, _ := json.Marshal(fmtParsed(a))
	jb, _ := json.Marshal(fmtParsed(b))
	return bytes.Equal(ja, jb)
}

func fmtParsed(p *parsed) any {
	s := func(v float64) string { return fmtFloat(v) }
	out := map[string]any{"dropped": p.dropped, "unary": s(p.unary), "sh": s(p.streamHandled), "ss": s(p.streamStarted)}
	var vals, codes []string
	for i, v := range p.vals {
		vals = append(vals, s(v)+fmtBool(p.seen[i]))
	}
	for _, v := range p.codes {
		codes = append(codes, s(v))
	}
	out["vals"], out["codes"] = vals, codes
	for i, h := range p.hists {
		var bs []string
		for _, b := range h.buckets {
			bs = append(bs, s(b.upper)+"="+fmtFloat(float64(b.count)))
		}
		out[fmtFloat(float64(i))] = []any{bs, s(h.count), s(h.sum), h.bad}
	}
	return out
}

func fmtBool(b bool) string {
	if b {
		return "+"
	}
	return "-"
}

// The scrape asks a real member for the protobuf format and reads it; a server (or a
// proxy) that answers in the text format is read as before; a protobuf format other than
// the delimited one is an error.
func TestScrapeNegotiatesFormat(t *testing.T) {
	u, unix := metricsURL(etcdtest.Endpoints())
	require.False(t, unix, "the shared node serves HTTP over TCP")
	target, err := url.Parse(u)
	require.NoError(t, err)
	var mu sync.Mutex
	var seen []string
	textOnly := false
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	proxy := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = target.Path
			mu.Lock()
			defer mu.Unlock()
			if textOnly {
				r.Out.Header.Set("Accept", acceptText)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, resp.Header.Get("Content-Type"))
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	hc := memberhttp.NewClients(nil)
	defer hc.Close()
	ctx := etcdtest.Context(t, 20*time.Second)

	p, size, err := scrape(ctx, hc, srv.URL, false)
	require.NoError(t, err)
	assert.True(t, p.seen[sHasLeader])
	assert.Positive(t, size)
	require.Len(t, seen, 1)
	assert.True(t, isProto(seen[0]), seen[0])

	mu.Lock()
	textOnly = true
	mu.Unlock()
	p, textSize, err := scrape(ctx, hc, srv.URL, false)
	require.NoError(t, err)
	assert.True(t, p.seen[sHasLeader])
	require.Len(t, seen, 2)
	assert.True(t, strings.HasPrefix(seen[1], "text/plain"), seen[1])
	assert.Greater(t, textSize, size, "the text format is the larger")

	for ct, want := range map[string]string{
		"":                          "",
		"text/plain; charset=utf-8": "",
		"APPLICATION/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited": "",
		"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text":      "unsupported",
		"application/vnd.google.protobufx": "",
		"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; =x": "unsupported",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ct)
			if strings.Contains(strings.ToLower(ct), "protobuf;") {
				_, _ = w.Write(hasLeader)
				return
			}
			_, _ = w.Write([]byte("etcd_server_has_leader 1\n"))
		}))
		_, _, err := scrape(ctx, hc, srv.URL, false)
		srv.Close()
		if want == "" {
			assert.NoError(t, err, ct)
		} else {
			assert.ErrorContains(t, err, want, ct)
		}
	}
}

// A label whose value length is a varint of two bytes is read as protobuf reads it, not
// as the one-byte length the fast path takes: here the value is truncated, so refused.
func TestProtoLabelMultiByteLength(t *testing.T) {
	b := []byte{labelNameTag, 1, 'a', labelValueTag, 0x85, 0x01}
	b = append(b, make([]byte, 132)...) // 133 bytes after the tag: the one-byte reading of 0x85 fits
	var ls labels
	assert.False(t, label(b, &ls), "a value of 5+128 bytes with 132 left is truncated")
	ok := []byte{labelNameTag, 1, 'a', labelValueTag, 0x80, 0x01}
	ok = append(ok, make([]byte, 128)...)
	assert.True(t, label(ok, &ls), "a 128-byte value with a two-byte length")
}
