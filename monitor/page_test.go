package monitor_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

// pageServer serves a Service that has not checked anything: the page needs no data.
func pageServer(t *testing.T) string {
	t.Helper()
	svc, err := monitor.New([]monitor.Cluster{{Name: "main", Client: etcdtest.Client(t)}})
	require.NoError(t, err)
	srv := httptest.NewServer(svc)
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, svc.Close())
	})
	return srv.URL
}

func pageFetch(t *testing.T, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// The page and its assets come from the binary, under a Content-Security-Policy that
// allows only the page's own script, style and API, with no type sniffing or framing.
func TestPageIsServedWithStrictHeaders(t *testing.T) {
	url := pageServer(t)
	for path, ctype := range map[string]string{
		"/":             "text/html; charset=utf-8",
		"/ui/app.js":    "text/javascript; charset=utf-8",
		"/ui/style.css": "text/css; charset=utf-8",
	} {
		resp, body := pageFetch(t, http.MethodGet, url+path, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, ctype, resp.Header.Get("Content-Type"), path)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			assert.Contains(t, csp, want, path)
		}
		assert.NotContains(t, csp, "unsafe", path)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"), path)
		assert.NotEmpty(t, body, path)

		// Revalidation by ETag, and HEAD.
		etag := resp.Header.Get("ETag")
		require.NotEmpty(t, etag, path)
		resp, _ = pageFetch(t, http.MethodGet, url+path, http.Header{"If-None-Match": {etag}})
		assert.Equal(t, http.StatusNotModified, resp.StatusCode, path)
		resp, body = pageFetch(t, http.MethodHead, url+path, nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Empty(t, body, path)
	}
}

// Paths the page does not have answer as the API does: a JSON error.
func TestPageUnknownPathsAndMethods(t *testing.T) {
	url := pageServer(t)
	for path, status := range map[string]int{
		"/nope":          http.StatusNotFound,
		"/ui/nope.js":    http.StatusNotFound,
		"/ui/index.html": http.StatusNotFound, // the page is at /, once
		"/ui/":           http.StatusNotFound,
		"/api/v1/nope":   http.StatusNotFound,
	} {
		resp, body := pageFetch(t, http.MethodGet, url+path, nil)
		assert.Equal(t, status, resp.StatusCode, path)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), path)
		assert.Contains(t, body, `"error"`, path)
	}
	for _, path := range []string{"/", "/ui/app.js"} {
		resp, body := pageFetch(t, http.MethodPost, url+path, nil)
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, path)
		assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"), path)
		assert.Contains(t, body, `"error"`, path)
	}
}

// The page works offline and cannot be made to run what an answer carries: it loads
// nothing from another origin, has no inline script, style or handler (the CSP would
// block them), and its script never parses markup.
func TestPageIsSelfContainedAndEscapes(t *testing.T) {
	url := pageServer(t)
	_, html := pageFetch(t, http.MethodGet, url+"/", nil)
	_, js := pageFetch(t, http.MethodGet, url+"/ui/app.js", nil)
	_, css := pageFetch(t, http.MethodGet, url+"/ui/style.css", nil)

	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for name, text := range map[string]string{"index.html": html, "app.js": js, "style.css": css} {
		for _, m := range external.FindAllString(text, -1) {
			assert.Equal(t, "http://www.w3.org", m, "%s refers to another origin", name) // the SVG namespace is a name, not a fetch
		}
		assert.NotContains(t, text, "@import", name)
		assert.NotContains(t, text, "@font-face", name)
	}

	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1)
	require.Len(t, scripts, 1)
	assert.Contains(t, scripts[0][1], `src="/ui/app.js"`)
	assert.Empty(t, strings.TrimSpace(scripts[0][2]), "no inline script")
	assert.NotRegexp(t, `(?i)<style\b|\sstyle=|\son[a-z]+=|javascript:`, html, "no inline style or handler")

	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('on", "DOMParser", "createContextualFragment"} {
		assert.False(t, strings.Contains(js, sink), "app.js uses %s: it must build the DOM from text, never markup", sink)
	}
	assert.False(t, strings.Contains(js, "localStorage"), "the token stays in sessionStorage")
}
