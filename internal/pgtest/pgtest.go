// Package pgtest gives tests a PostgreSQL: the shared one CI starts (.ci/postgres), or a
// private one a test may stop and start.
package pgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// URLEnv names the variable that holds the shared server's URL.
const URLEnv = "ETCD_MONITOR_TEST_POSTGRES_URL"

// URL returns the shared server's URL. Without one the test skips, or fails when
// CI=true, where a server must have been started.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(URLEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must start a PostgreSQL (.ci/postgres start)", URLEnv)
		}
		t.Skipf("%s is not set: start one with `eval \"$(.ci/postgres start)\"` to run this test", URLEnv)
	}
	return u
}

// Server is a PostgreSQL of the test's own, so that stopping it disturbs no other test.
type Server struct {
	URL, Data, Bin string
}

// Start starts a private server with .ci/postgres, as CI starts the shared one, and
// removes it when t ends. It skips (or fails in CI) like URL.
func Start(t testing.TB) *Server {
	t.Helper()
	URL(t)
	script := filepath.Join(root(t), ".ci", "postgres")
	out, err := exec.Command(script, "start").CombinedOutput()
	if err != nil {
		t.Fatalf("%s start: %v\n%s", script, err, out)
	}
	s := &Server{}
	for _, m := range regexp.MustCompile(`export (\w+)='([^']*)'`).FindAllStringSubmatch(string(out), -1) {
		switch m[1] {
		case URLEnv:
			s.URL = m[2]
		case "ETCD_MONITOR_TEST_POSTGRES_DATA":
			s.Data = m[2]
		case "ETCD_MONITOR_TEST_POSTGRES_BIN":
			s.Bin = m[2]
		}
	}
	if s.URL == "" || s.Data == "" {
		t.Fatalf("%s start printed no URL or data directory:\n%s", script, out)
	}
	t.Cleanup(func() { _ = exec.Command(script, "stop", s.Data).Run() })
	return s
}

// Ctl runs pg_ctl on the server, as the postgres user when we are root (the server
// refuses to run as root).
func (s *Server) Ctl(t testing.TB, args ...string) {
	t.Helper()
	args = append([]string{filepath.Join(s.Bin, "pg_ctl"), "-D", s.Data, "-w", "-t", "60"}, args...)
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = os.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
	}
}

// root is the module's root: the nearest directory up from the test's with a go.mod.
func root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
