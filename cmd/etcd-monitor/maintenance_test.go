package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// postMaint sends a POST with a JSON body and decodes the answer into out.
func postMaint(t *testing.T, url, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
	return resp.StatusCode
}

// The maintenance endpoints change the cluster: without tokens they answer 403 naming
// the settings; with tokens, read-only is refused and admin starts the operation.
func TestMaintenanceEndpointsNeedAdmin(t *testing.T) {
	ops := map[string]string{
		"/api/v1/clusters/default/maintenance/compact":  `{"keepRevisions":1000,"dryRun":true}`,
		"/api/v1/clusters/default/maintenance/defrag":   `{"dryRun":true,"allowSingleMember":true}`,
		"/api/v1/clusters/default/maintenance/snapshot": `{"dryRun":true}`,
	}
	url, _ := daemon(t, endpoints())
	for path, body := range ops {
		var e struct {
			Error string `json:"error"`
		}
		assert.Equal(t, http.StatusForbidden, postMaint(t, url+path, "", body, &e), path)
		assert.Contains(t, e.Error, "api.auth.tokens")
		assert.Contains(t, e.Error, "api.allow_unauthenticated_writes")
	}
	assert.Equal(t, http.StatusOK, request(t, "GET", url+"/api/v1/clusters/default/maintenance", "", "", nil), "reads need no token")

	dir := t.TempDir()
	cfg := writeFile(t, "auth.yaml", fmt.Sprintf(`
maintenance:
  snapshot_dir: %s
api:
  auth:
    tokens:
      - {name: grafana, token: %s, role: read-only}
      - {name: ops, token: %s, role: admin}
`, dir, readToken, adminToken))
	url, logs := daemon(t, "--config="+cfg, endpoints())
	for path, body := range ops {
		assert.Equal(t, http.StatusUnauthorized, postMaint(t, url+path, "", body, nil), path)
		assert.Equal(t, http.StatusForbidden, postMaint(t, url+path, readToken, body, nil), path)
		var op struct {
			ID, State string
		}
		require.Equal(t, http.StatusAccepted, postMaint(t, url+path, adminToken, body, &op), path)
		assert.Contains(t, logs.String(), fmt.Sprintf(`"method":"POST","path":%q,"status":202`, path))
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			var got struct{ State, Error string }
			assert.Equal(ct, http.StatusOK, request(ct, "GET", url+"/api/v1/clusters/default/maintenance/"+op.ID, readToken, "", &got))
			assert.Equal(ct, "succeeded", got.State, got.Error)
		}, 30*time.Second, 20*time.Millisecond, path)
	}
}

func TestMaintenanceConfig(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, yaml, key string
	}{
		{"no window", "etcd:\n  remediation: {defragment: true}\n", "etcd.remediation.window"},
		{"bad window", "etcd:\n  remediation: {nospace: true, window: \"Sat 02:00\"}\n", "etcd.remediation.window"},
		{"negative keep", "clusters:\n  - {name: b, endpoints: [\"a:1\"], remediation: {nospace: true, keep_revisions: -1}}\n", "clusters[0].remediation.keep_revisions"},
		{"negative retry", "etcd:\n  remediation: {nospace: true, retry: -1s}\n", "etcd.remediation.retry"},
		{"missing dir", "maintenance:\n  snapshot_dir: " + filepath.Join(dir, "missing") + "\n", "maintenance.snapshot_dir"},
		{"unknown key", "etcd:\n  remediation: {nospace: true, disarm: true}\n", "disarm"},
		{"marks too often", "maintenance:\n  mark_every: 10ms\n", "maintenance.mark_every"},
		{"marks kept too short", "maintenance:\n  mark_every: 1h\n  mark_keep: 1m\n", "maintenance.mark_keep"},
	} {
		cfg := defaultConfig()
		err := loadConfig(writeFile(t, "c.yaml", c.yaml), &cfg)
		if err == nil {
			err = cfg.validate()
		}
		if assert.Error(t, err, c.name) {
			assert.Contains(t, err.Error(), c.key, c.name)
		}
	}

	wd, err := os.Getwd()
	require.NoError(t, err)
	rel, err := filepath.Rel(wd, dir)
	require.NoError(t, err)
	cfg := defaultConfig()
	require.NoError(t, loadConfig(writeFile(t, "c.yaml", `
maintenance:
  snapshot_dir: `+rel+`
  mark_every: 1h
etcd:
  remediation: {defragment: true, window: "Sat,Sun 02:00-04:00 Europe/Berlin", nospace: true, dry_run: true}
clusters:
  - {name: b, endpoints: ["a:1"]}
`), &cfg))
	require.NoError(t, cfg.validate())
	assert.Equal(t, dir, cfg.Maintenance.SnapshotDir, "made absolute")
	r, err := cfg.Etcd.Remediation.remediation("etcd.remediation")
	require.NoError(t, err)
	assert.Equal(t, "Sat,Sun 02:00-04:00 Europe/Berlin", r.Window.String())
	assert.True(t, r.DryRun && r.NoSpace && r.Defragment)
	assert.Equal(t, 7*24*time.Hour, cfg.Maintenance.MarkKeep, "the default")
	assert.Len(t, cfg.maintenanceOptions(), 3, "the snapshot directory, revision marks and one cluster's remediation")
}
