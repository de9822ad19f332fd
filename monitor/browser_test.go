package monitor_test

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write ../docs/status-page.png (1280 px wide) from TestStatusPageInBrowser")

// chromium finds a Chromium or Chrome, or skips the test (fails it in CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (looked for chromium, chromium-browser, google-chrome in PATH): install Debian's chromium package to run the browser tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// console records what the page writes to its console: calls of the console API,
// uncaught exceptions and the browser's own log (failed loads, CSP violations).
type console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func (c *console) errors(exceptionsOnly bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.IsException() || (!exceptionsOnly && (m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning)) {
			out = append(out, m.String())
		}
	}
	return out
}

// browser starts a headless Chromium for the test and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 900))
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		defer t.Log("browser closed")
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
		acancel()
	})
	// Start the browser now, with a context that lives as long as the test.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	return ctx
}

// tab opens a new tab of the browser of ctx and records its console.
func tab(t *testing.T, ctx context.Context) (context.Context, *console) {
	t.Helper()
	tctx, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(tctx, chromedp.EmulateViewport(1280, 900)))
	con := &console{}
	msgs := chromedp.Console(tctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			con.mu.Lock()
			con.msgs = append(con.msgs, m)
			con.mu.Unlock()
		}
	}()
	return tctx, con
}

// actionTimeout bounds one step in the browser, so that a page that never gets where a
// step waits fails the test instead of hanging it. It bounds nothing the test checks:
// on a loaded machine Chromium took more than 15 s to show the login form again and
// type a token into it.
const actionTimeout = time.Minute

// evalJS runs a script in the page and decodes its JSON value into out.
func evalJS[T any](ctx context.Context, js string) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

// browse runs steps in the tab of ctx, each call bounded by actionTimeout.
func browse(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

type memberRow struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	Role  string `json:"role"`
}

const membersJS = `[...document.querySelectorAll('#members tbody tr[data-member-id]')].map(r => ({
	id: r.dataset.memberId, name: r.cells[0].textContent, state: r.querySelector('.state').textContent, role: r.cells[3].textContent}))`

type alertRow struct {
	Name   string `json:"name"`
	Member string `json:"member"`
	State  string `json:"state"`
}

const alertsJS = `[...document.querySelectorAll('#alerts tbody tr.alert')].map(r => ({
	name: r.dataset.alert, member: r.cells[3].textContent, state: r.querySelector('.alert-state').textContent}))`

// withTokens stands in for the daemon's authentication (cmd/etcd-monitor): a bearer
// token on every API request, admin for those that change something; the page and its
// assets are public.
func withTokens(next http.Handler, admin, reader string) http.Handler {
	deny := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(monitor.ErrorResponse{Status: status, Error: msg})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		if r.URL.Path == "/health" || read && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/")) {
			next.ServeHTTP(w, r)
			return
		}
		switch strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") {
		case admin:
		case reader:
			if !read {
				deny(w, http.StatusForbidden, "token \"reader\" is read-only; "+r.Method+" "+r.URL.Path+" needs an admin token")
				return
			}
		default:
			deny(w, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// artifacts is where the test leaves its screenshots: $ETCD_MONITOR_ARTIFACTS, or a
// directory of the test's own.
func artifacts(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("ETCD_MONITOR_ARTIFACTS"); dir != "" {
		dir, err := filepath.Abs(dir)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, paths ...string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	for _, p := range paths {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, png, 0o644))
		t.Logf("screenshot: %s", p)
	}
}

// The status page in a real browser, against a Service monitoring a 3-node cluster: it
// loads without console errors and shows the members; a member that stops shows as down
// without a reload within two health intervals; an alert is silenced and unsilenced from
// the page with an admin token, and a read-only token is told it cannot; the page fits
// 390 px; without EventSource or streams it polls.
func TestStatusPageInBrowser(t *testing.T) {
	start := time.Now()
	phase := func(name string) { t.Logf("%6.2fs %s", time.Since(start).Seconds(), name) }
	// Paths first: starting a cluster changes the working directory.
	dir := artifacts(t)
	readme, err := filepath.Abs(filepath.Join("..", "docs", "status-page.png"))
	require.NoError(t, err)
	ctx := browser(t)
	phase("browser started")
	c := etcdtest.NewCluster(t, 3, etcdtest.WithElectionTicks(50))
	phase("cluster started")

	const (
		interval     = 2 * time.Second
		probeTimeout = interval / 2
		// A member that stops is seen by the next check, which starts within an interval
		// and gives up on it within the probe timeout (< interval); the page hears of it
		// within the event hub's 200 ms.
		bound    = 2 * interval
		deadline = 3 * bound
		poll     = 50 * time.Millisecond
		// The first page that shows every member up waits on the cluster itself (its
		// first election, the first check that reaches every member), which no check
		// interval bounds and which takes seconds on a loaded machine.
		settle = time.Minute
	)
	endpoints := map[string]string{}
	for _, m := range c.Members {
		endpoints[m.Name] = m.GRPCURL
	}
	zero := time.Duration(0)
	// An alert of staging whose text is markup, once markupOn: the page must show it as text.
	var markupOn atomic.Bool
	markup := alert.Rule{Name: "TestMarkup", Severity: alert.Info, Summary: `<img src=x onerror="window.pwned=1">`,
		Check: func(in *alert.Input) []alert.Finding {
			if in.Cluster != "staging" || !markupOn.Load() {
				return nil
			}
			return []alert.Finding{{Labels: map[string]string{"member": "<b>m</b>"}, Description: `<script>window.pwned=2</script>`}}
		}}
	svc, err := monitor.New([]monitor.Cluster{
		{Name: "main", Client: c.ClusterClient(),
			Health:  []health.Option{health.WithTimeout(probeTimeout), health.WithEndpoints(endpoints)},
			Metrics: []metrics.Option{metrics.WithTimeout(probeTimeout), metrics.WithSamples(2), metrics.WithEndpoints(endpoints)}},
		{Name: "staging", Client: etcdtest.Client(t)},
	}, monitor.WithHealthInterval(interval), monitor.WithMetricsInterval(interval),
		monitor.WithAlertOptions(alert.WithConfig(alert.Config{Rules: map[string]alert.RuleOverride{"EtcdMembersDown": {For: &zero}}}),
			alert.WithExtraRules(markup)))
	require.NoError(t, err)
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(rctx) }()
	open := httptest.NewServer(svc)
	const adminToken, readToken = "admin-5ecret", "read-5ecret"
	authed := httptest.NewServer(withTokens(svc, adminToken, readToken))
	t.Cleanup(func() {
		open.Close()
		authed.Close()
		stop()
		require.NoError(t, <-done)
		require.NoError(t, svc.Close())
		phase("service closed")
	})

	// Until the first health check and metric collection of a cluster complete, its API
	// answers 503, which the browser logs as a console error: the page loads once every
	// cluster has both.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		for _, name := range []string{"main", "staging"} {
			for _, path := range []string{"status", "members", "leader", "metrics/current"} {
				var out struct{}
				assert.Equal(ct, http.StatusOK, get(ct, open.URL+"/api/v1/clusters/"+name+"/"+path, &out), "%s %s", name, path)
			}
		}
	}, settle, poll, "a first health check and metric collection of each cluster")
	phase("load")
	// The page loads and shows the three members, up, one of them the leader.
	view, con := tab(t, ctx)
	browse(t, view, chromedp.Navigate(open.URL+"/"))
	var rows []memberRow
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var err error
		rows, err = evalJS[[]memberRow](view, membersJS)
		if !assert.NoError(ct, err) || !assert.Len(ct, rows, 3) {
			return
		}
		// The leader the page shows is the one the API names.
		var status struct {
			Leader struct{ ID string } `json:"leader"`
		}
		if !assert.Equal(ct, http.StatusOK, get(ct, open.URL+"/api/v1/clusters/main/status", &status)) {
			return
		}
		for _, r := range rows {
			assert.Contains(ct, r.State, "up", r.Name)
			assert.Equal(ct, r.ID == status.Leader.ID, strings.Contains(r.Role, "leader"), "%s is the leader: %s", r.Name, r.Role)
		}
		live, err := evalJS[string](view, `document.getElementById('conn').textContent`)
		assert.NoError(ct, err)
		assert.Contains(ct, live, "live")
		verdict, err := evalJS[string](view, `document.getElementById('verdict').textContent`)
		assert.NoError(ct, err)
		assert.Contains(ct, verdict, "Healthy")
		charts, err := evalJS[int](view, `document.querySelectorAll('#charts polyline').length`)
		assert.NoError(ct, err)
		assert.Positive(ct, charts, "charts have lines once two snapshots are in")
	}, settle, poll)
	clusters, err := evalJS[[]string](view, `[...document.querySelectorAll('#clusters button')].map(b => b.dataset.cluster)`)
	require.NoError(t, err)
	assert.Equal(t, []string{"main", "staging"}, clusters)
	assert.Empty(t, con.errors(false), "console errors on load")

	phase("member stop")
	// A member stops: the page shows it down, without a reload.
	reloads, err := evalJS[int](view, `performance.getEntriesByType('navigation').length`)
	require.NoError(t, err)
	// A follower, so that no election slows the cluster down.
	down, downID := -1, ""
	for _, r := range rows {
		for i, m := range c.Members {
			if !strings.Contains(r.Role, "leader") && health.ID(m.Server.MemberID()).Hex() == r.ID {
				down, downID = i, r.ID
			}
		}
	}
	require.NotEqual(t, -1, down, "a follower among %v", rows)
	c.StopMember(down)
	stopped := time.Now()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		rows, err := evalJS[[]memberRow](view, membersJS)
		if !assert.NoError(ct, err) {
			return
		}
		for _, r := range rows {
			if r.ID == downID {
				assert.Contains(ct, r.State, "down")
			}
		}
	}, deadline, poll, "member %s shown down within %v", downID, deadline)
	t.Logf("member shown down %v after it stopped (bound %v)", time.Since(stopped).Round(10*time.Millisecond), bound)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		alerts, err := evalJS[[]alertRow](view, alertsJS)
		if assert.NoError(ct, err) {
			assert.Contains(ct, alerts, alertRow{Name: "EtcdMembersDown", Member: c.Members[down].Name, State: "▲ firing"})
		}
	}, deadline, poll)
	n, err := evalJS[int](view, `performance.getEntriesByType('navigation').length`)
	require.NoError(t, err)
	assert.Equal(t, reloads, n, "no reload")
	assert.Empty(t, con.errors(false), "console errors while live")

	phase("screenshot")
	shots := []string{filepath.Join(dir, "status-page-1280.png")}
	if *updateScreenshot {
		shots = append(shots, readme)
		// Some history in the charts for the README.
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			n, err := evalJS[int](view, `document.querySelector('#charts polyline').getAttribute('points').split(' ').length`)
			assert.NoError(ct, err)
			assert.GreaterOrEqual(ct, n, 10)
		}, time.Minute, 100*time.Millisecond)
	}
	screenshot(t, view, shots...)

	phase("390 px")
	// 390 px: nothing wider than the screen, the members still there.
	browse(t, view, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		w, err := evalJS[[]int](view, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`)
		if assert.NoError(ct, err) {
			assert.Equal(ct, 390, w[1], "viewport")
			assert.LessOrEqual(ct, w[0], w[1], "page wider than a 390 px screen")
		}
	}, 5*time.Second, poll)
	screenshot(t, view, filepath.Join(dir, "status-page-390.png"))

	phase("auth")
	// With authentication: the page asks for a token. A read-only one may look but not
	// silence, and the page says so; an admin token silences and unsilences.
	secure, scon := tab(t, ctx)
	browse(t, secure, chromedp.Navigate(authed.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("token"), readToken),
		chromedp.Click(chromedp.CSS(`#login-form button`)))
	firing := `document.querySelector('#alerts tr.alert[data-alert="EtcdMembersDown"] button.silence')`
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ok, err := evalJS[bool](secure, firing+` !== null`)
		assert.NoError(ct, err)
		assert.True(ct, ok, "a silence button for EtcdMembersDown")
	}, deadline, poll)
	_, err = evalJS[bool](secure, firing+`.click() || true`)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		msg, err := evalJS[string](secure, `document.getElementById('alert-msg').textContent`)
		assert.NoError(ct, err)
		assert.Contains(ct, msg, "admin token")
	}, deadline, poll)

	phase("admin token")
	_, err = evalJS[bool](secure, `document.getElementById('signout').click() || true`)
	require.NoError(t, err)
	browse(t, secure, chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.CSS(`#login-form button`)))
	stored, err := evalJS[string](secure, `sessionStorage.getItem('etcd-monitor-token') + '|' + (localStorage.length)`)
	require.NoError(t, err)
	assert.Equal(t, adminToken+"|0", stored, "the token is kept in sessionStorage only")
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ok, err := evalJS[bool](secure, firing+` !== null`)
		assert.NoError(ct, err)
		assert.True(ct, ok)
	}, deadline, poll)
	_, err = evalJS[bool](secure, firing+`.click() || true`)
	require.NoError(t, err)
	var silencedBy []string
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		alerts, err := evalJS[[]alertRow](secure, alertsJS)
		if assert.NoError(ct, err) {
			assert.Contains(ct, alerts, alertRow{Name: "EtcdMembersDown", Member: c.Members[down].Name, State: "🔕 silenced"})
		}
		var api monitor.AlertsResponse
		if assert.Equal(ct, http.StatusOK, get(ct, open.URL+"/api/v1/alerts", &api)) {
			for _, a := range api.Alerts {
				if a.Name == "EtcdMembersDown" {
					silencedBy = a.Status.SilencedBy
					assert.NotEmpty(ct, a.Status.SilencedBy, "silenced in the API")
				}
			}
		}
	}, deadline, poll)
	phase("other tab")
	// The other tab, on the open server, hears of it through its event stream.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		alerts, err := evalJS[[]alertRow](view, alertsJS)
		if assert.NoError(ct, err) {
			assert.Contains(ct, alerts, alertRow{Name: "EtcdMembersDown", Member: c.Members[down].Name, State: "🔕 silenced"})
		}
	}, deadline, poll)

	phase("unsilence")
	_, err = evalJS[bool](secure, `document.querySelector('#alerts tr.alert[data-alert="EtcdMembersDown"] button.unsilence').click() || true`)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		alerts, err := evalJS[[]alertRow](secure, alertsJS)
		if assert.NoError(ct, err) {
			for _, a := range alerts {
				if a.Name == "EtcdMembersDown" && a.Member == c.Members[down].Name {
					// Firing, or inhibited should the machine be so slow that the whole
					// cluster looks unreachable: not silenced in any case.
					assert.NotContains(ct, a.State, "silenced")
				}
			}
		}
		var sil alert.Silence
		if assert.Len(ct, silencedBy, 1) && assert.Equal(ct, http.StatusOK, get(ct, open.URL+"/api/v1/silences/"+silencedBy[0], &sil)) {
			assert.Equal(ct, alert.SilenceExpired, sil.Status.State)
		}
	}, deadline, poll)
	assert.Empty(t, scon.errors(true), "exceptions with authentication") // 401 and 403 answers are logged as errors by design

	phase("polling")
	markupOn.Store(true)
	// No EventSource and no streams: the page polls.
	legacy, lcon := tab(t, ctx)
	browse(t, legacy, addScript(`delete window.EventSource; delete window.ReadableStream;`))
	browse(t, legacy, chromedp.Navigate(open.URL+"/"))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		conn, err := evalJS[string](legacy, `document.getElementById('conn').textContent`)
		assert.NoError(ct, err)
		assert.Contains(ct, conn, "polling")
		rows, err := evalJS[[]memberRow](legacy, membersJS)
		assert.NoError(ct, err)
		assert.Len(ct, rows, 3)
	}, deadline, poll)
	assert.Empty(t, lcon.errors(false), "console errors when polling")

	phase("markup")
	// What the API says is shown as text, never run as markup.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var api monitor.AlertsResponse
		if assert.Equal(ct, http.StatusOK, get(ct, open.URL+"/api/v1/alerts?cluster=staging", &api)) {
			assert.NotEmpty(ct, api.Alerts)
		}
	}, deadline, poll)
	browse(t, legacy, chromedp.Navigate(open.URL+"/#cluster=staging"))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		alerts, err := evalJS[[]alertRow](legacy, alertsJS)
		if assert.NoError(ct, err) {
			assert.Contains(ct, alerts, alertRow{Name: "TestMarkup", Member: "<b>m</b>", State: "▲ firing"})
		}
		summary, err := evalJS[string](legacy, `document.querySelector('#alerts tr[data-alert="TestMarkup"]').cells[4].textContent`)
		assert.NoError(ct, err)
		assert.Equal(ct, `<img src=x onerror="window.pwned=1">`, summary)
	}, deadline, poll)
	pwned, err := evalJS[bool](legacy, `window.pwned === undefined && document.querySelector('#alerts img, #alerts b, #alerts script') === null`)
	require.NoError(t, err)
	assert.True(t, pwned, "markup from the API was parsed")
	phase("warnings")
	// Unsafe settings the service warns about are on the page.
	warned, err := monitor.New([]monitor.Cluster{{Name: "dev", Client: etcdtest.Client(t)}},
		monitor.WithWarnings("writes are accepted without authentication"))
	require.NoError(t, err)
	wsrv := httptest.NewServer(warned)
	t.Cleanup(func() {
		wsrv.Close()
		require.NoError(t, warned.Close())
	})
	browse(t, legacy, chromedp.Navigate(wsrv.URL+"/"))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		w, err := evalJS[string](legacy, `document.getElementById('warnings').hidden ? '' : document.getElementById('warnings').textContent`)
		assert.NoError(ct, err)
		assert.Equal(ct, "⚠ writes are accepted without authentication", w)
	}, deadline, poll)
	phase("done")
}

// addScript runs js in every document the tab opens from now on, before the page's own
// scripts.
func addScript(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
		return err
	})
}
