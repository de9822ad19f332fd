package monitor_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

// promService is a Service of two clusters (both the shared node, under two names),
// refreshed twice.
func promService(t *testing.T) *monitor.Service {
	t.Helper()
	cli := etcdtest.Client(t)
	svc, err := monitor.New([]monitor.Cluster{
		{Name: "a", Client: cli, Metrics: []metrics.Option{metrics.WithSamples(3)}},
		{Name: "b", Client: cli, Metrics: []metrics.Option{metrics.WithSamples(3)}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
	for range 2 {
		require.NoError(t, svc.Refresh(etcdtest.Context(t, 30*time.Second)))
	}
	return svc
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// The daemon's whole registry passes Prometheus' lint (HELP on every metric, _total on
// counters, base units, no quantile gauges), and every series of ours carries the
// cluster and, when about a member, its hex ID.
func TestPrometheusLint(t *testing.T) {
	svc := promService(t)
	problems, err := testutil.GatherAndLint(svc.Registry())
	require.NoError(t, err)
	assert.Empty(t, problems)

	fams, err := svc.Registry().Gather()
	require.NoError(t, err)
	var ours int
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "etcd_monitor_") {
			continue
		}
		ours++
		assert.NotEmpty(t, f.GetHelp(), name)
		assert.NotEqual(t, dto.MetricType_SUMMARY, f.GetType(), "%s: a summary cannot be aggregated", name)
		for _, m := range f.GetMetric() {
			l := labelsOf(m)
			assert.NotContains(t, l, "quantile", name)
			assert.NotContains(t, l, "member_id", name)
			if name == "etcd_monitor_notifications_total" {
				continue // per receiver, across clusters
			}
			assert.Contains(t, []string{"a", "b"}, l["cluster"], name)
			if id, ok := l["member"]; ok {
				var parsed metrics.ID
				assert.NoError(t, parsed.UnmarshalText([]byte(id)), "%s: member is a hex ID", name)
				assert.Equal(t, parsed.Hex(), id, "unpadded, as etcdctl prints it")
			}
		}
	}
	assert.Greater(t, ours, 30)
}

func histogramCount(t *testing.T, svc *monitor.Service, name string, match map[string]string) uint64 {
	t.Helper()
	fams, err := svc.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		require.Equal(t, dto.MetricType_HISTOGRAM, f.GetType(), name)
		for _, m := range f.GetMetric() {
			l := labelsOf(m)
			ok := true
			for k, v := range match {
				ok = ok && l[k] == v
			}
			if ok {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	t.Fatalf("no %s%v", name, match)
	return 0
}

// Histograms move as the Service works: each health check and collection of a cluster is
// one observation, each successful probe of a member one.
func TestPrometheusHistogramsMove(t *testing.T) {
	svc := promService(t)
	for _, cl := range []string{"a", "b"} {
		assert.Equal(t, uint64(2), histogramCount(t, svc, "etcd_monitor_health_check_duration_seconds", map[string]string{"cluster": cl}))
		assert.Equal(t, uint64(2), histogramCount(t, svc, "etcd_monitor_metric_collection_duration_seconds", map[string]string{"cluster": cl}))
	}
	fams, err := svc.Registry().Gather()
	require.NoError(t, err)
	series := func(name, cluster string) []*dto.Metric {
		var out []*dto.Metric
		for _, f := range fams {
			if f.GetName() == name {
				for _, m := range f.GetMetric() {
					if labelsOf(m)["cluster"] == cluster {
						out = append(out, m)
					}
				}
			}
		}
		return out
	}
	up := series("etcd_monitor_member_up", "a")
	require.Len(t, up, 1, "the shared node is one member")
	id := labelsOf(up[0])["member"]
	probes := histogramCount(t, svc, "etcd_monitor_probe_duration_seconds", map[string]string{"cluster": "a", "member": id})
	errs := series("etcd_monitor_probe_errors_total", "a")
	require.Len(t, errs, 1)
	assert.Equal(t, uint64(6), probes+uint64(errs[0].GetCounter().GetValue()), "3 probes in each of 2 collections")
	assert.Positive(t, probes)

	require.NoError(t, svc.Refresh(context.Background()))
	assert.Equal(t, uint64(3), histogramCount(t, svc, "etcd_monitor_health_check_duration_seconds", map[string]string{"cluster": "a"}))
	assert.Equal(t, uint64(3), histogramCount(t, svc, "etcd_monitor_metric_collection_duration_seconds", map[string]string{"cluster": "b"}))

	// The member's name is on the info series, for joins.
	info := series("etcd_monitor_member_info", "a")
	require.Len(t, info, 1)
	l := labelsOf(info[0])
	assert.Equal(t, id, l["member"])
	assert.NotEmpty(t, l["name"])
	assert.NotEmpty(t, l["version"])
	assert.Equal(t, "false", l["learner"])
}

// promtool, Prometheus' own checker, finds nothing to say about the text /metrics
// serves. It needs promtool on PATH: outside CI the test skips without it.
func TestPrometheusPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found; CI installs Debian's prometheus package")
		}
		t.Skip("promtool not found (apt-get install prometheus); CI runs this test")
	}
	svc := promService(t)
	fams, err := svc.Registry().Gather()
	require.NoError(t, err)
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		require.NoError(t, enc.Encode(f))
	}
	require.Contains(t, text.String(), "etcd_monitor_probe_duration_seconds_bucket")
	cmd := exec.CommandContext(etcdtest.Context(t, 30*time.Second), bin, "check", "metrics")
	cmd.Stdin = &text
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)))
}

// A member that goes down keeps the labels of its info series (its last known version),
// so that joins on etcd_monitor_member_info still name it while it is down.
func TestClusterFaultMemberInfoKeepsVersion(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	eps := map[string]string{}
	for _, m := range c.Members {
		eps[m.Name] = m.GRPCURL
	}
	svc, err := monitor.New([]monitor.Cluster{{Name: "main", Client: c.ClusterClient(),
		Health:  []health.Option{health.WithEndpoints(eps), health.WithTimeout(time.Second)},
		Metrics: []metrics.Option{metrics.WithEndpoints(eps), metrics.WithSamples(1), metrics.WithTimeout(2 * time.Second)}}})
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
	victim := (c.Leader() + 1) % 3
	id := metrics.ID(c.Members[victim].Server.MemberID()).Hex()

	// series returns the victim's reachable value and info labels.
	series := func(ct *assert.CollectT) (float64, map[string]string) {
		fams, err := svc.Registry().Gather()
		if !assert.NoError(ct, err) {
			return -1, nil
		}
		reach, info := -1.0, map[string]string(nil)
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				if l := labelsOf(m); l["member"] == id {
					switch f.GetName() {
					case "etcd_monitor_member_reachable":
						reach = m.GetGauge().GetValue()
					case "etcd_monitor_member_info":
						info = l
					}
				}
			}
		}
		return reach, info
	}
	var before map[string]string
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.NoError(ct, svc.Refresh(etcdtest.Context(t, 30*time.Second)))
		reach, info := series(ct)
		assert.Equal(ct, 1.0, reach)
		assert.NotEmpty(ct, info["version"])
		before = info
	}, 30*time.Second, 50*time.Millisecond)

	c.StopMember(victim)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.NoError(ct, svc.Refresh(etcdtest.Context(t, 30*time.Second)))
		reach, info := series(ct)
		assert.Equal(ct, 0.0, reach, "the stopped member is seen down")
		assert.Equal(ct, before, info, "its info series keeps its labels")
	}, 30*time.Second, 50*time.Millisecond)
}
