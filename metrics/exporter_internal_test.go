package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
