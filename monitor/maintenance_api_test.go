package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// maintService serves a Service over clusters on loopback, without running its loops,
// and closes it when the test ends.
func maintService(t *testing.T, clusters []monitor.Cluster, opts ...monitor.Option) (*monitor.Service, string) {
	t.Helper()
	svc, err := monitor.New(clusters, opts...)
	require.NoError(t, err)
	srv := httptest.NewServer(svc)
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, svc.Close())
	})
	return svc, srv.URL
}

// do sends a request with a JSON body and decodes the answer into out (when not nil);
// it returns the status and the Location header. It does not stop the test, so that it
// may run in an Eventually condition.
func do(t assert.TestingT, method, url, body string, out any) (int, string) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if !assert.NoError(t, err) {
		return 0, ""
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if !assert.NoError(t, err) {
		return 0, ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !assert.NoError(t, err) {
		return 0, ""
	}
	if out != nil && method != http.MethodHead && !assert.NoError(t, json.Unmarshal(b, out), "%s %s: %s", method, url, b) {
		return 0, ""
	}
	return resp.StatusCode, resp.Header.Get("Location")
}

// waitOp polls an operation until it is no longer running and returns it.
func waitOp(t *testing.T, base, location string, within time.Duration) monitor.MaintenanceOperation {
	t.Helper()
	var op monitor.MaintenanceOperation
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		op = monitor.MaintenanceOperation{}
		status, _ := do(ct, http.MethodGet, base+location, "", &op)
		assert.Equal(ct, http.StatusOK, status)
		assert.NotEqual(ct, monitor.OpRunning, op.State)
	}, within, 20*time.Millisecond)
	return op
}

// fragment writes and deletes values and compacts them away, so that every member's
// database has free pages for a defragmentation to give back.
func fragment(t *testing.T, cli *clientv3.Client, prefix string) {
	t.Helper()
	ctx := etcdtest.Context(t, 90*time.Second)
	v := strings.Repeat("x", 16<<10)
	for i := range 60 {
		_, err := cli.Put(ctx, prefix+strings.Repeat("k", i%7)+string(rune('a'+i%26))+time.Now().Format("150405.000000000"), v)
		require.NoError(t, err)
	}
	resp, err := cli.Delete(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	_, err = cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)
}

// recording is a store that remembers every maintenance record written, in order.
type recording struct {
	store.Store
	mu   sync.Mutex
	puts []monitor.MaintenanceOperation
}

func (r *recording) PutMaintenanceOp(ctx context.Context, op store.MaintenanceOp) error {
	var data monitor.MaintenanceOperation
	if err := json.Unmarshal(op.Data, &data); err != nil {
		return err
	}
	r.mu.Lock()
	r.puts = append(r.puts, data)
	r.mu.Unlock()
	return r.Store.PutMaintenanceOp(ctx, op)
}

func (r *recording) written(id string) []monitor.MaintenanceOperation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []monitor.MaintenanceOperation
	for _, op := range r.puts {
		if op.ID == id {
			out = append(out, op)
		}
	}
	return out
}

// A defragmentation through the API on three members: 202 with the operation and its
// Location at once, the progress persisted member by member, the leader last, and the
// result in the store and in the list.
func TestMaintenanceAPIDefragment(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	cli := c.ClusterClient()
	endpoints := map[string]string{}
	for _, m := range c.Members {
		endpoints[m.Name] = m.GRPCURL
	}
	fragment(t, cli, "/frag/")
	st := &recording{Store: store.NewMemory()}
	_, url := maintService(t, []monitor.Cluster{{Name: "main", Client: cli,
		Health: []health.Option{health.WithEndpoints(endpoints), health.WithTimeout(3 * time.Second)}}},
		monitor.WithStore(st))
	leader := health.ID(c.Members[c.Leader()].Server.MemberID())

	// A dry run records the plan and changes nothing.
	var dry monitor.MaintenanceOperation
	status, loc := do(t, http.MethodPost, url+"/api/v1/clusters/main/maintenance/defrag", `{"dryRun":true}`, &dry)
	require.Equal(t, http.StatusAccepted, status)
	dry = waitOp(t, url, loc, 30*time.Second)
	require.Equal(t, monitor.OpSucceeded, dry.State, dry.Error)
	var plan maintenance.DefragmentReport
	require.NoError(t, json.Unmarshal(dry.Report, &plan))
	assert.True(t, plan.DryRun)
	require.Len(t, plan.Members, 3)
	assert.Equal(t, leader, plan.Members[2].ID, "the leader last")
	for _, m := range plan.Members {
		assert.Equal(t, maintenance.StatePending, m.State)
	}

	var op monitor.MaintenanceOperation
	status, loc = do(t, http.MethodPost, url+"/api/v1/clusters/main/maintenance/defrag", "", &op)
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "/api/v1/clusters/main/maintenance/"+op.ID, loc)
	assert.Equal(t, monitor.OpDefragment, op.Kind)
	assert.Equal(t, monitor.TriggerAPI, op.Trigger)
	assert.Equal(t, "main", op.Cluster)
	assert.False(t, op.Started.IsZero())

	op = waitOp(t, url, loc, 60*time.Second)
	require.Equal(t, monitor.OpSucceeded, op.State, op.Error)
	var rep maintenance.DefragmentReport
	require.NoError(t, json.Unmarshal(op.Report, &rep))
	require.Len(t, rep.Members, 3)
	for i, m := range rep.Members {
		assert.Equal(t, maintenance.StateDone, m.State, m.Name)
		assert.Less(t, m.DBSizeAfter, m.DBSizeBefore, "%s shrinks", m.Name)
		if i > 0 {
			assert.True(t, m.Started.After(rep.Members[i-1].Started), "one member after the other")
		}
	}
	assert.Equal(t, leader, rep.Members[2].ID, "the leader last")
	assert.False(t, op.Finished.Before(op.Started))

	assert.Contains(t, string(op.Report), `"durationSeconds":`, "durations in seconds, as everywhere in the API")
	assert.NotContains(t, string(op.Report), `"duration":`)

	// The record was written as the operation went: running, after each member, done.
	puts := st.written(op.ID)
	require.Len(t, puts, 5)
	for i, p := range puts[:4] {
		assert.Equal(t, monitor.OpRunning, p.State)
		assert.Len(t, p.Progress, i, "members done")
	}
	assert.Equal(t, monitor.OpSucceeded, puts[4].State)

	// The store has the final record; the list has both, newest first.
	recs, err := st.MaintenanceOps(context.Background(), store.MaintenanceQuery{Cluster: "main"})
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, op.ID, recs[0].ID)
	assert.Equal(t, monitor.OpSucceeded, recs[0].State)
	assert.True(t, recs[1].DryRun)
	var list monitor.MaintenanceResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/main/maintenance", &list))
	require.Len(t, list.Operations, 2)
	assert.Equal(t, op.ID, list.Operations[0].ID)
	assert.Equal(t, dry.ID, list.Operations[1].ID)
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/main/maintenance?limit=1", &list))
	assert.Len(t, list.Operations, 1)
}

// One operation per cluster at a time (409 naming the running one), and a shutdown
// cancels the operation in flight, which is recorded as cancelled.
func TestMaintenanceAPIOneAtATimeAndCancelledOnShutdown(t *testing.T) {
	cli, faults := etcdtest.FaultClient(t)
	faults.Stall(func(method string, _ any) bool { return method == "/etcdserverpb.Maintenance/Defragment" })
	st := store.NewMemory()
	svc, err := monitor.New([]monitor.Cluster{{Name: "one", Client: cli}}, monitor.WithStore(st))
	require.NoError(t, err)
	srv := httptest.NewServer(svc)
	defer srv.Close()
	closed := false
	defer func() {
		if !closed {
			svc.Close()
		}
	}()

	var op monitor.MaintenanceOperation
	status, loc := do(t, http.MethodPost, srv.URL+"/api/v1/clusters/one/maintenance/defrag", `{"allowSingleMember":true}`, &op)
	require.Equal(t, http.StatusAccepted, status)
	// Wait until the defragmentation hangs in etcd (the guard passed, the member started).
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Positive(ct, faults.Hits()) }, 30*time.Second, 10*time.Millisecond)

	var e monitor.ErrorResponse
	status, _ = do(t, http.MethodPost, srv.URL+"/api/v1/clusters/one/maintenance/compact", `{"keepRevisions":1000}`, &e)
	assert.Equal(t, http.StatusConflict, status)
	assert.Contains(t, e.Error, op.ID)
	var running monitor.MaintenanceOperation
	require.Equal(t, http.StatusOK, get(t, srv.URL+loc, &running))
	assert.Equal(t, monitor.OpRunning, running.State)

	svc.Interrupt()
	status, _ = do(t, http.MethodPost, srv.URL+"/api/v1/clusters/one/maintenance/compact", `{"keepRevisions":1000}`, &e)
	assert.Equal(t, http.StatusServiceUnavailable, status, "no new operation while shutting down")
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		recs, err := st.MaintenanceOps(context.Background(), store.MaintenanceQuery{Cluster: "one"})
		if assert.NoError(ct, err) && assert.Len(ct, recs, 1) {
			assert.Equal(ct, monitor.OpCancelled, recs[0].State)
			assert.False(ct, recs[0].Finished.IsZero())
		}
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, svc.Close(), "Close waits for the operation, which has ended")
	closed = true
	var done monitor.MaintenanceOperation
	require.Equal(t, http.StatusOK, get(t, srv.URL+loc, &done))
	assert.Equal(t, monitor.OpCancelled, done.State)
	assert.Contains(t, done.Error, "shutting down")
}

// Snapshots go only into the configured directory, under a plain file name; a compaction
// keeps what it is told.
func TestMaintenanceAPISnapshotAndCompact(t *testing.T) {
	dir := t.TempDir()
	cli := etcdtest.Client(t)
	_, err := cli.Put(etcdtest.Context(t, 10*time.Second), etcdtest.Prefix(t)+"k", "v")
	require.NoError(t, err)
	_, url := maintService(t, []monitor.Cluster{{Name: "one", Client: cli}}, monitor.WithSnapshotDir(dir))

	var op monitor.MaintenanceOperation
	status, loc := do(t, http.MethodPost, url+"/api/v1/clusters/one/maintenance/snapshot", `{"name":"backup-1.db"}`, &op)
	require.Equal(t, http.StatusAccepted, status)
	op = waitOp(t, url, loc, 30*time.Second)
	require.Equal(t, monitor.OpSucceeded, op.State, op.Error)
	var snap maintenance.SnapshotReport
	require.NoError(t, json.Unmarshal(op.Report, &snap))
	assert.Equal(t, filepath.Join(dir, "backup-1.db"), snap.Path)
	assert.Positive(t, snap.Revision, "%s", op.Report)
	fi, err := os.Stat(filepath.Join(dir, "backup-1.db"))
	require.NoError(t, err)
	assert.Equal(t, snap.Size, fi.Size())

	var e monitor.ErrorResponse
	status, _ = do(t, http.MethodPost, url+"/api/v1/clusters/one/maintenance/snapshot", `{"name":"backup-1.db"}`, &e)
	assert.Equal(t, http.StatusConflict, status, "never overwritten: %s", e.Error)

	// Without a name: one of its own, in the directory.
	status, loc = do(t, http.MethodPost, url+"/api/v1/clusters/one/maintenance/snapshot", ``, &op)
	require.Equal(t, http.StatusAccepted, status)
	op = waitOp(t, url, loc, 30*time.Second)
	require.Equal(t, monitor.OpSucceeded, op.State, op.Error)
	require.NoError(t, json.Unmarshal(op.Report, &snap))
	assert.Equal(t, dir, filepath.Dir(snap.Path))
	assert.True(t, strings.HasPrefix(filepath.Base(snap.Path), "one-"), snap.Path)

	status, loc = do(t, http.MethodPost, url+"/api/v1/clusters/one/maintenance/compact", `{"keepRevisions":1000000,"physical":true}`, &op)
	require.Equal(t, http.StatusAccepted, status)
	op = waitOp(t, url, loc, 30*time.Second)
	require.Equal(t, monitor.OpSucceeded, op.State, op.Error)
	var comp maintenance.CompactReport
	require.NoError(t, json.Unmarshal(op.Report, &comp))
	assert.Positive(t, comp.Revision)
	assert.Zero(t, comp.CompactRevision, "fewer revisions than kept: nothing to compact")

	var list monitor.MaintenanceResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/one/maintenance", &list))
	require.Len(t, list.Operations, 3)
	assert.Equal(t, []string{monitor.OpCompact, monitor.OpSnapshot, monitor.OpSnapshot},
		[]string{list.Operations[0].Kind, list.Operations[1].Kind, list.Operations[2].Kind}, "newest first")
}

// Bad requests get a 4xx naming the problem, and start nothing.
func TestMaintenanceAPIRejects(t *testing.T) {
	_, url := maintService(t, []monitor.Cluster{{Name: "one", Client: etcdtest.Client(t)}}, monitor.WithSnapshotDir(t.TempDir()))
	noDir := func() string {
		_, u := maintService(t, []monitor.Cluster{{Name: "one", Client: etcdtest.Client(t)}})
		return u
	}()
	base := url + "/api/v1/clusters/one/maintenance"
	for _, tc := range []struct {
		method, url, body string
		status            int
		says              string
	}{
		{"POST", base + "/defrag", `{"dryRun":true,"force":true}`, 400, "unknown field"},
		{"POST", base + "/defrag", `{"dryRun":true}{}`, 400, "after the object"},
		{"POST", base + "/defrag", `[1]`, 400, "malformed"},
		{"POST", base + "/compact", `{}`, 400, "exactly one of keepRevisions"},
		{"POST", base + "/compact", `{"keepRevisions":5,"retain":"1h"}`, 400, "exactly one"},
		{"POST", base + "/compact", `{"keepRevisions":-5}`, 400, "keepRevisions"},
		{"POST", base + "/compact", `{"retain":"yesterday"}`, 400, "retain"},
		{"POST", base + "/compact", `{"retain":"-1h"}`, 400, "retain"},
		{"POST", base + "/snapshot", `{"name":"../escape.db"}`, 400, "not a path"},
		{"POST", base + "/snapshot", `{"name":"/tmp/escape.db"}`, 400, "not a path"},
		{"POST", base + "/snapshot", `{"name":"sub/escape.db"}`, 400, "not a path"},
		{"POST", base + "/snapshot", `{"name":".hidden"}`, 400, "not a path"},
		{"POST", base + "/snapshot", `{"name":"a\\b"}`, 400, "not a path"},
		{"POST", base + "/snapshot", `{"path":"/etc/x"}`, 400, "unknown field"},
		{"POST", noDir + "/api/v1/clusters/one/maintenance/snapshot", `{}`, 403, "snapshot_dir"},
		{"POST", base + "/reboot", `{}`, 404, "defrag, compact or snapshot"},
		{"POST", url + "/api/v1/clusters/two/maintenance/defrag", `{}`, 404, "unknown cluster"},
		{"POST", base + "/defrag?force=1", `{}`, 400, "unknown query parameter"},
		{"PUT", base + "/defrag", `{}`, 405, "use GET, HEAD, POST"},
		{"DELETE", base, ``, 405, "use GET, HEAD"},
		{"GET", base + "?limit=0", ``, 400, "limit"},
		{"GET", base + "?sort=asc", ``, 400, "unknown query parameter"},
		{"GET", base + "/0123456789abcdef", ``, 404, "no maintenance operation"},
		{"GET", url + "/api/v1/clusters/two/maintenance", ``, 404, "unknown cluster"},
	} {
		var e monitor.ErrorResponse
		status, _ := do(t, tc.method, tc.url, tc.body, &e)
		assert.Equal(t, tc.status, status, "%s %s %s: %s", tc.method, tc.url, tc.body, e.Error)
		assert.Contains(t, e.Error, tc.says, "%s %s %s", tc.method, tc.url, tc.body)
	}
	// A POST must declare its body JSON (a browser's cross-site form cannot).
	resp, err := http.Post(base+"/defrag", "text/plain", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)

	var list monitor.MaintenanceResponse
	require.Equal(t, http.StatusOK, get(t, base, &list))
	assert.Empty(t, list.Operations, "nothing was started")
}

func TestMaintenanceOptionsRejected(t *testing.T) {
	cl := []monitor.Cluster{{Name: "one", Client: etcdtest.Client(t)}}
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for name, opt := range map[string]monitor.Option{
		"relative dir":        monitor.WithSnapshotDir("snapshots"),
		"missing dir":         monitor.WithSnapshotDir(filepath.Join(t.TempDir(), "missing")),
		"file, not dir":       monitor.WithSnapshotDir(file),
		"unknown cluster":     monitor.WithRemediation("two", monitor.Remediation{NoSpace: true}),
		"defrag, no window":   monitor.WithRemediation("one", monitor.Remediation{Defragment: true}),
		"negative keep":       monitor.WithRemediation("one", monitor.Remediation{NoSpace: true, KeepRevisions: -1}),
		"negative retry":      monitor.WithRemediation("one", monitor.Remediation{NoSpace: true, Retry: -time.Second}),
		"marks, no every":     monitor.WithRevisionMarks(0, time.Hour),
		"marks, keep < every": monitor.WithRevisionMarks(time.Hour, time.Minute),
	} {
		_, err := monitor.New(cl, opt)
		assert.ErrorIs(t, err, monitor.ErrInvalidArgument, name)
	}
}

// With revision marks, a compaction by age ("retain") has marks to go by; marks older
// than keep are deleted.
func TestMaintenanceAPICompactByAge(t *testing.T) {
	cli := etcdtest.Client(t)
	svc, err := monitor.New([]monitor.Cluster{{Name: "one", Client: cli}}, monitor.WithRevisionMarks(50*time.Millisecond, 300*time.Millisecond))
	require.NoError(t, err)
	srv := httptest.NewServer(svc)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, svc.Close())
	}()
	m, err := maintenance.New(cli)
	require.NoError(t, err)
	var first maintenance.RevisionMark
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		marks, err := m.Marks(context.Background())
		if assert.NoError(ct, err) && assert.NotEmpty(ct, marks) {
			first = marks[0]
		}
	}, 30*time.Second, 10*time.Millisecond)

	var op monitor.MaintenanceOperation
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		status, loc := do(ct, http.MethodPost, srv.URL+"/api/v1/clusters/one/maintenance/compact", `{"retain":"100ms"}`, &op)
		if !assert.Equal(ct, http.StatusAccepted, status) {
			return
		}
		var got monitor.MaintenanceOperation
		assert.EventuallyWithT(ct, func(c2 *assert.CollectT) {
			assert.Equal(c2, http.StatusOK, func() int { s, _ := do(c2, http.MethodGet, srv.URL+loc, "", &got); return s }())
			assert.NotEqual(c2, monitor.OpRunning, got.State)
		}, 10*time.Second, 10*time.Millisecond)
		assert.Equal(ct, monitor.OpSucceeded, got.State, got.Error) // until a mark is 100ms old: ErrNoMark
		op = got
	}, 30*time.Second, 50*time.Millisecond)
	var rep maintenance.CompactReport
	require.NoError(t, json.Unmarshal(op.Report, &rep))
	assert.False(t, rep.MarkTime.IsZero(), "compacted to a mark")
	assert.Positive(t, rep.CompactRevision)

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		marks, err := m.Marks(context.Background())
		if assert.NoError(ct, err) && assert.NotEmpty(ct, marks) {
			assert.True(ct, marks[0].Time.After(first.Time), "the first mark is pruned once older than keep")
		}
	}, 30*time.Second, 10*time.Millisecond)
}

// failingStore refuses every maintenance record.
type failingStore struct{ store.Store }

func (failingStore) PutMaintenanceOp(context.Context, store.MaintenanceOp) error {
	return errors.New("disk full")
}

// A store that fails (or lags behind) does not stop an operation, and the API shows the
// last operation from memory.
func TestMaintenanceAPIStoreFailure(t *testing.T) {
	_, url := maintService(t, []monitor.Cluster{{Name: "one", Client: etcdtest.Client(t)}},
		monitor.WithStore(failingStore{store.NewMemory()}))
	var op monitor.MaintenanceOperation
	status, loc := do(t, http.MethodPost, url+"/api/v1/clusters/one/maintenance/compact", `{"keepRevisions":1000000,"dryRun":true}`, &op)
	require.Equal(t, http.StatusAccepted, status)
	op = waitOp(t, url, loc, 30*time.Second)
	assert.Equal(t, monitor.OpSucceeded, op.State, op.Error)
	var list monitor.MaintenanceResponse
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/clusters/one/maintenance", &list))
	require.Len(t, list.Operations, 1)
	assert.Equal(t, op.ID, list.Operations[0].ID)
}

// A standby replica starts no maintenance operation (503): the active replica, its
// remediation included, may be running one on the same cluster, and one operation runs
// at a time per cluster. Reads still answer; during a term of its own it starts them.
func TestMaintenanceAPIRefusedOnStandby(t *testing.T) {
	st := store.NewMemory()
	t.Cleanup(func() { st.Close() })
	svc, url := maintService(t, []monitor.Cluster{{Name: "one", Client: etcdtest.Client(t)}}, monitor.WithStore(st), monitor.WithStandby(),
		monitor.WithSnapshotDir(t.TempDir()))
	base := url + "/api/v1/clusters/one/maintenance"
	for _, tc := range []struct{ op, body string }{
		{"defrag", `{"dryRun":true}`}, {"compact", `{"keepRevisions":5,"dryRun":true}`}, {"snapshot", `{"dryRun":true}`},
	} {
		var e monitor.ErrorResponse
		status, _ := do(t, http.MethodPost, base+"/"+tc.op, tc.body, &e)
		assert.Equal(t, http.StatusServiceUnavailable, status, "%s: %s", tc.op, e.Error)
		assert.Contains(t, e.Error, "standby", tc.op)
	}
	var list monitor.MaintenanceResponse
	require.Equal(t, http.StatusOK, get(t, base, &list))
	assert.Empty(t, list.Operations, "nothing was started")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.RunAlerts(ctx, st) }()
	var location string
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var op monitor.MaintenanceOperation
		var status int
		status, location = do(ct, http.MethodPost, base+"/compact", `{"keepRevisions":5,"dryRun":true}`, &op)
		assert.Equal(ct, http.StatusAccepted, status)
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, monitor.OpSucceeded, waitOp(t, url, location, 30*time.Second).State)
	cancel()
	require.NoError(t, <-done)
}
