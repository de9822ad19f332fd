package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-monitor/etcd-monitor/alert"
)

// promtool returns the path of promtool. Outside CI a missing promtool skips the test
// (with the way to get it); in CI (CI=true) it fails it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found: install Debian's prometheus package (apt-get install prometheus) to check the rule file"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// rulesOutput runs `etcd-monitor rules` with args and returns its output.
func rulesOutput(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	code := rulesCommand(args, &out, &errOut)
	require.Equal(t, 0, code, "etcd-monitor rules %v: %s", args, errOut.String())
	return out.String()
}

func parseRuleFile(t *testing.T, s string) promRuleFile {
	t.Helper()
	var f promRuleFile
	require.NoError(t, yaml.Unmarshal([]byte(s), &f))
	require.Len(t, f.Groups, 1)
	return f
}

// The rule file holds the daemon's rules — every one etcd's metrics can express — with
// the daemon's severities, for durations and runbooks, and promtool accepts it.
func TestRulesCommandMatchesDaemonRules(t *testing.T) {
	out := rulesOutput(t)
	f := parseRuleFile(t, out)

	cfg := defaultConfig()
	want, err := daemonRules(&cfg)
	require.NoError(t, err)
	type key struct{ name, severity, forDur string }
	var wantKeys, gotKeys []key
	for _, r := range want {
		if r.Expr == "" {
			assert.Contains(t, out, "#   "+r.Name+": ", "a rule left out says why")
			continue
		}
		wantKeys = append(wantKeys, key{r.Name, r.Severity.String(), promDur(r.For)})
	}
	for _, r := range f.Groups[0].Rules {
		forDur := r.For
		if forDur == "" {
			forDur = promDur(0)
		}
		gotKeys = append(gotKeys, key{r.Alert, r.Labels["severity"], forDur})
		assert.True(t, strings.HasPrefix(r.Annotations["runbook_url"], alert.RunbookBase+strings.ToLower(r.Alert)), r.Alert)
		assert.NotEmpty(t, r.Annotations["summary"], r.Alert)
	}
	assert.Equal(t, wantKeys, gotKeys)
	for _, name := range []string{"EtcdInsufficientMembers", "EtcdNoLeader", "EtcdMembersDown", "EtcdHighFsyncDurations",
		"EtcdHighNumberOfLeaderChanges", "EtcdDatabaseQuotaLowSpace", "EtcdAvailableMembersLow", "EtcdDatabaseSizeHigh"} {
		assert.True(t, slices.ContainsFunc(gotKeys, func(k key) bool { return k.name == name }), "%s in the file", name)
	}

	path := filepath.Join(t.TempDir(), "rules.yml")
	require.NoError(t, os.WriteFile(path, []byte(out), 0o600))
	check, err := exec.Command(promtool(t), "check", "rules", path).CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", check)
	assert.Contains(t, string(check), "SUCCESS")
}

// The promtool unit tests in testdata/rules mirror the daemon's rule tests (same
// sequences, same alerts absent, pending or firing at each step) over the rule file of
// the default configuration. A rule file with other thresholds or for durations fails
// them, so they test the file, not themselves.
func TestRulesPromtoolUnitTests(t *testing.T) {
	t.Parallel() // promtool processes, nothing shared
	bin := promtool(t)
	tests, err := filepath.Glob(filepath.Join(pkgDir, "testdata/rules/*_test.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, tests)
	run := func(t *testing.T, config string, only ...string) (string, error) {
		dir := t.TempDir()
		var args []string
		if config != "" {
			args = append(args, "--config="+writeFile(t, "c.yaml", config))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(rulesOutput(t, args...)), 0o600))
		var names []string
		for _, src := range tests {
			if len(only) > 0 && !slices.Contains(only, filepath.Base(src)) {
				continue
			}
			b, err := os.ReadFile(src)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o600))
			names = append(names, filepath.Base(src))
		}
		cmd := exec.Command(bin, append([]string{"test", "rules"}, names...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(t, "")
	require.NoError(t, err, "promtool test rules:\n%s", out)
	assert.Equal(t, len(tests), strings.Count(out, "SUCCESS"), out)

	for _, tc := range []struct{ name, config, failing string }{
		{"members down for 1m", "alerts:\n  rules:\n    EtcdMembersDown: {for: 1m}\n", "quorum_test.yml"},
		{"no leader at once", "alerts:\n  rules:\n    EtcdNoLeader: {for: 0s}\n", "quorum_test.yml"},
		{"fsync at 2s", "alerts:\n  thresholds: {fsync_p99: 2s, fsync_p99_critical: 3s}\n", "histograms_test.yml"},
		{"20 failed proposals", "alerts:\n  thresholds: {failed_proposals: 20}\n", "counters_test.yml"},
		{"quota at 99%", "alerts:\n  thresholds: {quota_used: 0.99}\n", "database_test.yml"},
		{"growth over 2h", "alerts:\n  thresholds: {fill_within: 2h}\n", "growth_test.yml"},
		{"grpc at 2%", "alerts:\n  thresholds: {grpc_failed_warning: 0.02}\n", "counters_test.yml"},
		{"raft lag of 10000", "alerts:\n  thresholds: {raft_index_lag: 10000}\n", "raftlag_test.yml"},
		{"no minimum of members", "thresholds: {min_available_nodes: 0}\n", "quorum_test.yml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.config, tc.failing)
			require.Error(t, err, "the unit tests must fail for a rule file with %s:\n%s", tc.name, out)
			_, after, _ := strings.Cut(out, "Unit Testing:  "+tc.failing)
			assert.True(t, strings.HasPrefix(strings.TrimSpace(after), "FAILED"), "%s fails:\n%s", tc.failing, out)
		})
	}
}

// The configuration the daemon runs with is the one printed: thresholds, for durations,
// disabled rules and the first daemon's thresholds block.
func TestRulesCommandConfig(t *testing.T) {
	cfg := writeFile(t, "c.yaml", `
thresholds: {min_available_nodes: 0, max_db_size_mb: 100}
alerts:
  thresholds: {fsync_p99: 300ms, leader_changes: 7}
  rules:
    EtcdMembersDown: {for: 7m, keep_firing_for: 1m}
    EtcdSplitBrain: {disabled: true}
`)
	f := parseRuleFile(t, rulesOutput(t, "--config="+cfg, "--selector", `job="etcd-prod"`, "--group", "prod"))
	assert.Equal(t, "prod", f.Groups[0].Name)
	byName := map[string]promRule{}
	for _, r := range f.Groups[0].Rules {
		if r.Labels["severity"] == "warning" || byName[r.Alert].Alert == "" {
			byName[r.Alert] = r
		}
		assert.NotContains(t, r.Expr, alert.EtcdSelector, "selector replaced")
	}
	assert.Equal(t, "7m", byName["EtcdMembersDown"].For)
	assert.Equal(t, "1m", byName["EtcdMembersDown"].KeepFiringFor)
	assert.Equal(t, `up{job="etcd-prod"} == 0`, byName["EtcdMembersDown"].Expr)
	assert.Contains(t, byName["EtcdHighFsyncDurations"].Expr, "> 0.3")
	assert.Contains(t, byName["EtcdHighNumberOfLeaderChanges"].Expr, ">= 7")
	assert.Contains(t, byName["EtcdDatabaseSizeHigh"].Expr, "> 104857600")
	assert.NotContains(t, byName, "EtcdSplitBrain", "disabled")
	assert.NotContains(t, byName, "EtcdAvailableMembersLow", "min_available_nodes: 0")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--selector", `job=~"(`}, "selector"},
		{[]string{"--selector", ""}, "selector"},
		{[]string{"--config=" + writeFile(t, "bad.yaml", "alerts:\n  thresholds: {quota_used: 2}\n")}, "quota_used"},
		{[]string{"--config=/nonexistent/c.yaml"}, "nonexistent"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		var out, errOut bytes.Buffer
		assert.NotZero(t, rulesCommand(tc.args, &out, &errOut), "%v", tc.args)
		assert.Contains(t, errOut.String(), tc.want, "%v", tc.args)
		assert.Empty(t, out.String(), "%v", tc.args)
	}
}

// promDur writes durations as Prometheus reads them.
func TestPromDur(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", 5 * time.Second: "5s", 90 * time.Second: "90s",
		3 * time.Minute: "3m", 4 * time.Hour: "4h", 1500 * time.Millisecond: "1500ms"} {
		assert.Equal(t, want, promDur(d))
	}
}

// --selector is parsed as label matchers and written back as PromQL matchers with
// quoted values: an unquoted value (valid in Alertmanager's syntax) is quoted, and a
// value cannot close the selector and add PromQL of its own.
func TestRulesSelectorQuoted(t *testing.T) {
	for sel, want := range map[string]string{
		`job=etcd`:                          `up{job="etcd"} == 0`,
		` job = "etcd" , a!=b `:             `up{job="etcd",a!="b"} == 0`,
		`job='x'} or vector(1) or up{b='y'`: `up{job="'x'} or vector(1) or up{b='y'"} == 0`,
	} {
		f := parseRuleFile(t, rulesOutput(t, "--selector", sel))
		var got string
		for _, r := range f.Groups[0].Rules {
			if r.Alert == "EtcdMembersDown" {
				got = r.Expr
			}
		}
		assert.Equal(t, want, got, "selector %q", sel)
	}
}
