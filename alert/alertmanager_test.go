package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
)

// postableAlertKeys are the properties of Alertmanager's OpenAPI "postableAlert"
// (api/v2/openapi.yaml): labels is required, the rest optional.
var postableAlertKeys = map[string]bool{"labels": true, "annotations": true, "startsAt": true, "endsAt": true, "generatorURL": true}

// checkPostableAlerts validates a POST /api/v2/alerts body against the published
// schema: an array of postableAlert, labels and annotations maps of strings, date-times
// in RFC 3339, generatorURL a URI.
func checkPostableAlerts(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var alerts []map[string]any
	require.NoError(t, json.Unmarshal(body, &alerts), "an array of postableAlert")
	require.NotEmpty(t, alerts)
	for i, a := range alerts {
		for k := range a {
			assert.True(t, postableAlertKeys[k], "alert %d: property %q is not in postableAlert", i, k)
		}
		labels, ok := a["labels"].(map[string]any)
		require.True(t, ok, "alert %d: labels is required and an object", i)
		assert.NotEmpty(t, labels)
		for k, v := range labels {
			_, ok := v.(string)
			assert.True(t, ok, "label %s is a string", k)
		}
		if an, ok := a["annotations"]; ok {
			for k, v := range an.(map[string]any) {
				_, ok := v.(string)
				assert.True(t, ok, "annotation %s is a string", k)
			}
		}
		for _, k := range []string{"startsAt", "endsAt"} {
			if v, ok := a[k]; ok {
				_, err := time.Parse(time.RFC3339Nano, v.(string))
				assert.NoError(t, err, "%s is a date-time", k)
			}
		}
		if v, ok := a["generatorURL"]; ok {
			u, err := url.Parse(v.(string))
			assert.NoError(t, err)
			assert.True(t, u.IsAbs(), "generatorURL is a URI")
		}
	}
	return alerts
}

// The alertmanager receiver posts Alertmanager's API v2 shape to /api/v2/alerts.
func TestAlertmanagerReceiverShape(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/prefix/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		bodies = append(bodies, b)
	}))
	defer srv.Close()
	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithExternalURL("http://monitor:8080/"),
		alert.WithConfig(alert.Config{Receivers: []alert.ReceiverConfig{{Name: "am", Type: alert.TypeAlertmanager, URL: srv.URL + "/prefix/"}}}))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	_, err = m.Evaluate(ctx, report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	sw.set(false)
	_, err = m.Evaluate(ctx, report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 2)
	firing := checkPostableAlerts(t, bodies[0])
	assert.Equal(t, "EtcdTestSwitch", firing[0]["labels"].(map[string]any)["alertname"])
	assert.Equal(t, "critical", firing[0]["labels"].(map[string]any)["severity"])
	assert.Equal(t, "test switch is on", firing[0]["annotations"].(map[string]any)["summary"])
	assert.Equal(t, "http://monitor:8080/", firing[0]["generatorURL"])
	ends, _ := time.Parse(time.RFC3339Nano, firing[0]["endsAt"].(string))
	assert.True(t, ends.After(time.Now()), "a firing alert ends in the future unless re-sent")
	resolved := checkPostableAlerts(t, bodies[1])
	ends, _ = time.Parse(time.RFC3339Nano, resolved[0]["endsAt"].(string))
	assert.False(t, ends.After(time.Now()), "a resolved alert has ended")
}

// Against a real Alertmanager when one is installed (Debian: prometheus-alertmanager).
func TestAlertmanagerReal(t *testing.T) {
	bin := ""
	for _, name := range []string{"alertmanager", "prometheus-alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("alertmanager is not installed; CI must install it (apt-get install -y prometheus-alertmanager)")
		}
		t.Skip("alertmanager binary not found (install prometheus-alertmanager); the OpenAPI shape is checked by TestAlertmanagerReceiverShape")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "am.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n"), 0o600))
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.path="+dir,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=")
	out, _ := os.Create(filepath.Join(dir, "am.log"))
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		out.Close()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		resp, err := http.Get(base + "/-/ready")
		if assert.NoError(c, err) {
			resp.Body.Close()
			assert.Equal(c, http.StatusOK, resp.StatusCode)
		}
	}, 20*time.Second, 50*time.Millisecond, "alertmanager starts")

	sw := &switchRule{on: true}
	m, err := alert.New(alert.WithRules(sw.rule()), alert.WithExternalURL("http://monitor:8080/"),
		alert.WithConfig(alert.Config{Receivers: []alert.ReceiverConfig{{Name: "am", Type: alert.TypeAlertmanager, URL: base}}}))
	require.NoError(t, err)
	defer m.Close()
	_, err = m.Evaluate(context.Background(), report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(context.Background()))
	recs, err := m.Notifications(context.Background(), alert.NotificationQuery{})
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	require.Equal(t, "sent", recs[0].Status, recs[0].Error)

	type amAlert struct {
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		GeneratorURL string            `json:"generatorURL"`
		EndsAt       time.Time         `json:"endsAt"`
		Status       struct {
			State string `json:"state"`
		} `json:"status"`
	}
	get := func(c *assert.CollectT) []amAlert {
		resp, err := http.Get(base + "/api/v2/alerts")
		if !assert.NoError(c, err) {
			return nil
		}
		defer resp.Body.Close()
		var as []amAlert
		assert.NoError(c, json.NewDecoder(resp.Body).Decode(&as))
		return as
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		as := get(c)
		if assert.Len(c, as, 1) {
			assert.Equal(c, "EtcdTestSwitch", as[0].Labels["alertname"])
			assert.Equal(c, "critical", as[0].Labels["severity"])
			assert.Equal(c, "test switch is on", as[0].Annotations["summary"])
			assert.NotEmpty(c, as[0].Annotations["description"])
			assert.Equal(c, "http://monitor:8080/", as[0].GeneratorURL)
			assert.Equal(c, "active", as[0].Status.State)
		}
	}, 10*time.Second, 50*time.Millisecond)

	sw.set(false)
	_, err = m.Evaluate(context.Background(), report(t), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(context.Background()))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, a := range get(c) {
			assert.False(c, a.EndsAt.After(time.Now()), "resolved in Alertmanager")
		}
	}, 10*time.Second, 50*time.Millisecond)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
