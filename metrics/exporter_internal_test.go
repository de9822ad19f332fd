package metrics

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Members with the same or an empty name are distinct series: the exporter keys them by
// member ID (a pedantic registry rejects duplicate series).
func TestExporterKeysMembersByID(t *testing.T) {
	c := &Collector{}
	c.exporter = newExporter(c)
	c.history = []*Snapshot{{Time: time.Now(), Members: []MemberMetrics{
		{ID: 0x816ea2898684f93, Name: "", Scraped: true},
		{ID: 0x2, Name: "", Scraped: true},
		{ID: 0x3, Name: "dup", Scraped: true},
		{ID: 0x4, Name: "dup", Scraped: true},
	}}}
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c.exporter))
	n, err := testutil.GatherAndCount(reg, "etcd_monitor_member_up")
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	fams, err := reg.Gather()
	require.NoError(t, err)
	var ids []string
	for _, f := range fams {
		if f.GetName() == "etcd_monitor_member_up" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "member" {
						ids = append(ids, l.GetValue())
					}
				}
			}
		}
	}
	assert.ElementsMatch(t, []string{"816ea2898684f93", "2", "3", "4"}, ids, "unpadded hex, as etcdctl writes IDs")
}

// BenchmarkExport60Members is what one Prometheus scrape of a daemon watching 60
// members costs for this package's series: gathering them (histograms with their buckets
// included) and writing the text format.
func BenchmarkExport60Members(b *testing.B) {
	body, err := os.ReadFile(realMetricsText)
	if err != nil {
		b.Fatal(err)
	}
	c := &Collector{}
	c.exporter = newExporter(c)
	snap := &Snapshot{Time: time.Now()}
	for i := range 60 {
		p, err := parse(bytes.NewReader(body), MaxScrapeBytes)
		if err != nil {
			b.Fatal(err)
		}
		m := MemberMetrics{ID: ID(0x1000 + i), Name: "m"}
		fill(&m, p, time.Now(), nil)
		m.PeerRTT = m.WALFsync // a real member of a cluster has peers
		snap.Members = append(snap.Members, m)
		c.exporter.observeProbes(m.ID.Hex(), []time.Duration{time.Millisecond, 2 * time.Millisecond}, 0)
		c.exporter.observeScrape(m.ID.Hex(), time.Millisecond, int64(len(body)), nil)
	}
	c.history = []*Snapshot{snap}
	reg := prometheus.NewRegistry()
	if err := reg.Register(c.exporter); err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		fams, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range fams {
			if err := enc.Encode(f); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(out.Len()), "bytes-of-text")
}
