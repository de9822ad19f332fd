package dashboards_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/dashboards"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

// TestMain runs the tests against one in-process etcd and fails the run if any
// goroutine outlives them.
func TestMain(m *testing.M) { etcdtest.Main(m) }

// dashboard is the part of Grafana's JSON model the test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := dashboards.FS.ReadFile(dashboards.Overview)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

var (
	strLit    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	braces    = regexp.MustCompile(`\{[^}]*\}`)
	brackets  = regexp.MustCompile(`\[[^\]]*\]`)
	grouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ident     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	labelVals = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
	keywords  = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true,
		"inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL expression (or a Grafana
// label_values(expr, label) variable query) selects: identifiers outside strings,
// matchers, ranges and grouping clauses that are not functions or keywords.
func metricNames(expr string) []string {
	if m := labelVals.FindStringSubmatch(expr); m != nil {
		expr = m[1]
	}
	expr = strLit.ReplaceAllString(expr, `""`)
	expr = braces.ReplaceAllString(expr, "{}")
	expr = brackets.ReplaceAllString(expr, "[]")
	expr = grouping.ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range ident.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		if keywords[name] || strings.HasPrefix(rest, "(") || (loc[0] > 0 && strings.ContainsAny(expr[loc[0]-1:loc[0]], "$.0123456789")) {
			continue
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (cluster, le) (rate(a_bucket{cluster=~"$cluster", x="by(y)"}[$__rate_interval])))`: {"a_bucket"},
		`max by (cluster) (b) - on (cluster) group_right c{job="j"} / ignoring(x) d offset 5m`:                              {"b", "c", "d"},
		`label_values(etcd_server_has_leader, job)`:                                                                         {"etcd_server_has_leader"},
		`sum without (instance) (rate(e_total[1m])) > bool 1e3 and f`:                                                       {"e_total", "f"},
	} {
		assert.Equal(t, want, metricNames(expr), expr)
	}
}

// names maps the metric families a registry or a member exposes to their types.
type names map[string]dto.MetricType

// described marks a family that is only described (a vector without series yet, such as
// notifications before the first one): its type cannot be read from a Desc.
const described dto.MetricType = -1

// has reports whether name is a family, or a histogram's or summary's series. A family
// only described is taken at its word for the suffixes, since its type is unknown.
func (n names) has(name string) bool {
	if _, ok := n[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			typ, ok := n[base]
			if ok && (typ == dto.MetricType_HISTOGRAM || typ == described || (suffix != "_bucket" && typ == dto.MetricType_SUMMARY)) {
				return true
			}
		}
	}
	return false
}

// ours are the families the daemon's registry exports once it has checked and collected
// a 3-member cluster (peer round trips exist only between peers).
func ours(t *testing.T, c *etcdtest.Cluster) names {
	t.Helper()
	eps := map[string]string{}
	for _, m := range c.Members {
		eps[m.Name] = m.GRPCURL
	}
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: c.ClusterClient(),
		Metrics: []metrics.Option{metrics.WithEndpoints(eps)}, Health: []health.Option{health.WithEndpoints(eps)}}})
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
	// Until every member was scraped (an election on a loaded machine may fail one).
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		if !assert.NoError(ct, svc.Refresh(etcdtest.Context(t, 30*time.Second))) {
			return
		}
		fams, err := svc.Registry().Gather()
		if !assert.NoError(ct, err) {
			return
		}
		up, peers := 0, 0
		for _, f := range fams {
			if f.GetName() == "etcd_monitor_member_peer_round_trip_time_seconds" {
				peers = len(f.GetMetric())
			}
			if f.GetName() == "etcd_monitor_member_up" {
				for _, m := range f.GetMetric() {
					if m.GetGauge().GetValue() == 1 {
						up++
					}
				}
			}
		}
		assert.Equal(ct, 3, up, "members probed and scraped")
		// etcd observes peer round trips every few seconds from its start.
		assert.Positive(ct, peers, "peer round trips measured")
	}, 60*time.Second, 100*time.Millisecond)
	fams, err := svc.Registry().Gather()
	require.NoError(t, err)
	out := names{}
	for _, f := range fams {
		out[f.GetName()] = f.GetType()
	}
	// Vectors with no series yet (no notification sent) are only described.
	descs := make(chan *prometheus.Desc, 1024)
	go func() { svc.Registry().Describe(descs); close(descs) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			if _, ok := out[m[1]]; !ok {
				out[m[1]] = described
			}
		}
	}
	return out
}

// etcds are the families a real etcd member serves on /metrics.
func etcds(t *testing.T, cli *clientv3.Client) names {
	t.Helper()
	resp, err := cli.MemberList(etcdtest.Context(t, 10*time.Second))
	require.NoError(t, err)
	require.NotEmpty(t, resp.Members)
	base, unix := memberhttp.Base(resp.Members[0].ClientURLs)
	require.NotEmpty(t, base)
	hc := &http.Client{Timeout: 10 * time.Second}
	if unix {
		hc = memberhttp.UnixClient(hc)
	}
	mresp, err := hc.Get(base + "/metrics")
	require.NoError(t, err)
	defer mresp.Body.Close()
	require.Equal(t, http.StatusOK, mresp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(mresp.Body)
	require.NoError(t, err)
	out := names{}
	for name, f := range fams {
		out[name] = f.GetType()
	}
	return out
}

// Every query of every panel and variable names metrics that exist: ours as the
// daemon's registry exports them, etcd's as a real member serves them.
func TestDashboardMetricsExist(t *testing.T) {
	d := load(t)
	c := etcdtest.NewCluster(t, 3)
	our, etcd := ours(t, c), etcds(t, c.ClusterClient())
	require.Contains(t, our, "etcd_monitor_probe_duration_seconds")
	require.Contains(t, etcd, "etcd_server_has_leader")

	check := func(where, expr string) {
		found := metricNames(expr)
		assert.NotEmpty(t, found, "%s: %s names no metric", where, expr)
		for _, name := range found {
			if strings.HasPrefix(name, "etcd_monitor_") {
				assert.True(t, our.has(name), "%s: %s is not exported by etcd-monitor", where, name)
				continue
			}
			assert.True(t, our.has(name) || etcd.has(name), "%s: %s is neither etcd-monitor's nor etcd's", where, name)
		}
	}
	var queries int
	for _, p := range flatten(d.Panels) {
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
			queries++
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			require.NoError(t, json.Unmarshal(v.Query, &q.Query), "variable %s", v.Name)
		}
		check("variable "+v.Name, q.Query)
		queries++
	}
	assert.Greater(t, queries, 30)
}

// The dashboard is well formed: unique panel IDs, every panel with queries on the data
// source variable, every variable a query uses defined.
func TestDashboardShape(t *testing.T) {
	d := load(t)
	assert.NotEmpty(t, d.Title)
	assert.NotEmpty(t, d.UID)
	defined := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	require.True(t, defined["datasource"])
	require.True(t, defined["cluster"])
	ids := map[int]string{}
	vars := regexp.MustCompile(`\$\{?(\w+)`)
	for _, p := range flatten(d.Panels) {
		prev, dup := ids[p.ID]
		assert.False(t, dup, "panel id %d of %q is also %q's", p.ID, p.Title, prev)
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		assert.NotEmpty(t, p.Title)
		assert.NotEmpty(t, p.Targets, p.Title)
		if assert.NotNil(t, p.Datasource, p.Title) {
			assert.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range vars.FindAllStringSubmatch(tg.Expr, -1) {
				assert.True(t, defined[m[1]], "%s: $%s is not a variable", p.Title, m[1])
			}
		}
	}
	assert.Greater(t, len(ids), 30)
}
