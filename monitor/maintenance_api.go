package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// The maintenance API's paths: PathMaintenance lists a cluster's operations,
// PathMaintenanceOp starts one (POST .../defrag, .../compact, .../snapshot) or shows one
// (GET .../{id}).
const (
	PathMaintenance    = "/api/v1/clusters/{name}/maintenance"
	PathMaintenanceOp  = "/api/v1/clusters/{name}/maintenance/{op}"
	maxMaintenanceBody = 16 << 10
)

// WithSnapshotDir lets POST /api/v1/clusters/{name}/maintenance/snapshot write snapshots
// into dir (an absolute path to an existing directory), under a file name the request may
// choose but never a path: the name cannot leave dir. Default: none, and the endpoint
// answers 403.
func WithSnapshotDir(dir string) Option {
	return optionFunc(func(o *options) { o.maint.snapshotDir = dir })
}

// DefragRequest is the body of POST /api/v1/clusters/{name}/maintenance/defrag. Every
// field is optional.
type DefragRequest struct {
	// DryRun checks the guard and records the plan without defragmenting anything.
	DryRun bool `json:"dryRun,omitempty"`
	// MoveLeader hands leadership away before the leader's turn.
	MoveLeader bool `json:"moveLeader,omitempty"`
	// AllowSingleMember defragments a cluster of one voting member, which does not
	// serve meanwhile; without it such a cluster is refused.
	AllowSingleMember bool `json:"allowSingleMember,omitempty"`
}

// CompactRequest is the body of POST /api/v1/clusters/{name}/maintenance/compact:
// exactly one of KeepRevisions and Retain.
type CompactRequest struct {
	DryRun bool `json:"dryRun,omitempty"`
	// KeepRevisions keeps the last N revisions.
	KeepRevisions int64 `json:"keepRevisions,omitempty"`
	// Retain keeps every revision newer than this duration ("24h"); it needs revision
	// marks (WithRevisionMarks), or the operation fails with maintenance.ErrNoMark.
	Retain string `json:"retain,omitempty"`
	// Physical waits until every member has applied the compaction.
	Physical bool `json:"physical,omitempty"`
}

// SnapshotRequest is the body of POST /api/v1/clusters/{name}/maintenance/snapshot.
type SnapshotRequest struct {
	DryRun bool `json:"dryRun,omitempty"`
	// Name is the snapshot's file name in the snapshot directory: letters, digits, '.',
	// '_' and '-', not starting with '.', at most 128 characters. Default
	// CLUSTER-YYYYMMDDTHHMMSSZ.db. An existing file is never overwritten (409).
	Name string `json:"name,omitempty"`
}

// MaintenanceResponse is the body of GET /api/v1/clusters/{name}/maintenance: the
// cluster's operations, newest first.
type MaintenanceResponse struct {
	Operations []MaintenanceOperation `json:"operations"`
}

// The maintenance routes in the OpenAPI document. The POST body is a DefragRequest,
// CompactRequest or SnapshotRequest, by {op}.
var (
	_ = documentRoute(RouteDoc{Method: "GET", Path: PathMaintenance, Response: MaintenanceResponse{}, Params: []string{"limit", "alert"},
		ParamDocs: map[string]string{"alert": "Only the operations answering this alert (its fingerprint, as /api/v1/alerts shows it)."},
		Summary:   "The cluster's maintenance operations, newest first."})
	_ = documentRoute(RouteDoc{Method: "GET", Path: PathMaintenanceOp, Response: MaintenanceOperation{},
		Summary: "One maintenance operation, by ID ({op}): its state, progress and report."})
	_ = documentRoute(RouteDoc{Method: "POST", Path: PathMaintenanceOp, Body: maintenanceBody{}, Response: MaintenanceOperation{}, Status: 202, Admin: true,
		Summary: "Starts a maintenance operation ({op}: defrag, compact or snapshot) in the background and answers 202 with it; " +
			"Location names it. 409 while another operation of the cluster runs; 503 on a standby replica. Content-Type: application/json; unknown fields are refused."})
)

// maintenanceBody documents the union of the POST bodies; each {op} takes its own fields.
type maintenanceBody struct {
	DryRun            bool   `json:"dryRun,omitempty"`
	MoveLeader        bool   `json:"moveLeader,omitempty"`
	AllowSingleMember bool   `json:"allowSingleMember,omitempty"`
	KeepRevisions     int64  `json:"keepRevisions,omitempty"`
	Retain            string `json:"retain,omitempty"`
	Physical          bool   `json:"physical,omitempty"`
	Name              string `json:"name,omitempty"`
}

var snapshotName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// maintenanceRoutes serves the maintenance operations a cluster's admins start through
// the API. A POST answers 202 Accepted at once, with the operation as it starts and its
// address in Location; the operation runs in the background.
func (s *Service) maintenanceRoutes(mux *http.ServeMux) {
	mux.Handle(PathMaintenance, s.maintHandler(map[string]func(http.ResponseWriter, *http.Request, *clusterMaint) error{
		http.MethodGet: s.getMaintenance,
	}))
	mux.Handle(PathMaintenanceOp, s.maintHandler(map[string]func(http.ResponseWriter, *http.Request, *clusterMaint) error{
		http.MethodGet:  s.getMaintenanceOp,
		http.MethodPost: s.postMaintenance,
	}))
}

// maintHandler checks the method and the cluster, then calls the method's function,
// which writes the answer or returns an error to answer with.
func (s *Service) maintHandler(hs map[string]func(http.ResponseWriter, *http.Request, *clusterMaint) error) http.Handler {
	var allow []string
	for m := range hs {
		allow = append(allow, m)
		if m == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	allowed := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet
		}
		h, ok := hs[m]
		if !ok {
			writeError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s; use %s", r.Method, r.URL.Path, allowed), allowed)
			return
		}
		name := r.PathValue("name")
		c, ok := s.maint.clusters[name]
		if !ok {
			writeError(w, errorf(http.StatusNotFound, "unknown cluster %q (have %s)", name, strings.Join(s.Clusters(), ", ")), "")
			return
		}
		if err := h(w, r, c); err != nil {
			writeError(w, err, "")
		}
	})
}

// maintQuery returns the request's query parameters, refusing any but allowed.
func maintQuery(r *http.Request, allowed ...string) (url.Values, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "malformed query string: %v", err)
	}
	allowed = append(allowed, "pretty")
	for name, v := range vals {
		if !slices.Contains(allowed, name) {
			return nil, errorf(http.StatusBadRequest, "unknown query parameter %q (want %s)", name, strings.Join(allowed, ", "))
		}
		if len(v) != 1 {
			return nil, errorf(http.StatusBadRequest, "query parameter %q given %d times", name, len(v))
		}
	}
	return vals, nil
}

func reply(w http.ResponseWriter, r *http.Request, status int, v any) {
	respond(w, r, status, v, r.URL.Query().Has("pretty"))
}

// getMaintenance lists the cluster's operations, newest first: ?limit= (1 to 1000,
// default 100), ?alert=FINGERPRINT for those answering one alert (as Alert or among
// Alerts).
func (s *Service) getMaintenance(w http.ResponseWriter, r *http.Request, c *clusterMaint) error {
	vals, err := maintQuery(r, "limit", "alert")
	if err != nil {
		return err
	}
	limit := defaultHistoryLimit
	if v := vals.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxHistoryLimit {
			return errorf(http.StatusBadRequest, "bad limit %q: want an integer from 1 to %d", v, maxHistoryLimit)
		}
	}
	fp := vals.Get("alert")
	n := limit
	if fp != "" {
		n = maxHistoryLimit // filtered below: the store selects by cluster only
	}
	ops, err := s.maint.list(r.Context(), c, n)
	if err != nil {
		return err
	}
	if fp != "" {
		ops = slices.DeleteFunc(ops, func(op MaintenanceOperation) bool { return op.Alert != fp && !slices.Contains(op.Alerts, fp) })
		ops = ops[:min(len(ops), limit)]
	}
	reply(w, r, http.StatusOK, MaintenanceResponse{Operations: ops})
	return nil
}

func (s *Service) getMaintenanceOp(w http.ResponseWriter, r *http.Request, c *clusterMaint) error {
	if _, err := maintQuery(r); err != nil {
		return err
	}
	id := r.PathValue("op")
	ops, err := s.maint.list(r.Context(), c, maxHistoryLimit)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ops, func(op MaintenanceOperation) bool { return op.ID == id })
	if i < 0 {
		return errorf(http.StatusNotFound, "cluster %s: no maintenance operation %q among the last %d (POST defrag, compact or snapshot starts one)",
			c.name, id, maxHistoryLimit)
	}
	reply(w, r, http.StatusOK, ops[i])
	return nil
}

// postMaintenance starts an operation: 202 with the operation and its Location, 400 for
// a bad body, 403 for snapshots without a snapshot directory, 409 while another
// operation of the cluster runs (or the snapshot file exists), 503 while shutting down
// or on a standby replica.
func (s *Service) postMaintenance(w http.ResponseWriter, r *http.Request, c *clusterMaint) error {
	if _, err := maintQuery(r); err != nil {
		return err
	}
	if err := jsonBody(r); err != nil {
		return err
	}
	body, err := readBody(r, maxMaintenanceBody)
	if err != nil {
		return err
	}
	var op MaintenanceOperation
	var fn opFunc
	switch kind := r.PathValue("op"); kind {
	case "defrag":
		var req DefragRequest
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
		mreq := maintenance.DefragmentRequest{DryRun: req.DryRun, MoveLeader: req.MoveLeader, AllowSingleMember: req.AllowSingleMember}
		op = MaintenanceOperation{Kind: OpDefragment, DryRun: req.DryRun}
		op.Request, _ = json.Marshal(req)
		fn = func(ctx context.Context, progress func(maintenance.MemberDefrag)) (any, error) {
			mreq.Progress = progress
			return c.m.Defragment(ctx, mreq)
		}
	case "compact":
		var req CompactRequest
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
		mreq := maintenance.CompactRequest{KeepRevisions: req.KeepRevisions, Physical: req.Physical, DryRun: req.DryRun}
		switch {
		case req.KeepRevisions < 0:
			return errorf(http.StatusBadRequest, "keepRevisions: %d must be positive", req.KeepRevisions)
		case req.Retain != "":
			d, err := time.ParseDuration(req.Retain)
			if err != nil || d <= 0 {
				return errorf(http.StatusBadRequest, "retain: %q: want a positive duration such as 24h", req.Retain)
			}
			mreq.KeepNewerThan = d
		}
		if (mreq.KeepRevisions > 0) == (mreq.KeepNewerThan > 0) {
			return errorf(http.StatusBadRequest, "give exactly one of keepRevisions (the last N revisions) and retain (a duration such as 24h)")
		}
		op = MaintenanceOperation{Kind: OpCompact, DryRun: req.DryRun}
		op.Request, _ = json.Marshal(req)
		fn = func(ctx context.Context, _ func(maintenance.MemberDefrag)) (any, error) {
			return c.m.Compact(ctx, mreq)
		}
	case "snapshot":
		if s.maint.snapshotDir == "" {
			return errorf(http.StatusForbidden, "snapshots through the API are off: no snapshot directory is configured "+
				"(maintenance.snapshot_dir in the daemon's configuration, monitor.WithSnapshotDir)")
		}
		var req SnapshotRequest
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
		if req.Name == "" {
			req.Name = fmt.Sprintf("%s-%s.db", c.name, time.Now().UTC().Format("20060102T150405.000Z"))
		}
		if !snapshotName.MatchString(req.Name) || !filepath.IsLocal(req.Name) {
			return errorf(http.StatusBadRequest, "name: %q: want a file name (letters, digits, '.', '_', '-'; not starting with '.'; "+
				"at most 128 characters), not a path: snapshots are written to the snapshot directory", req.Name)
		}
		path := filepath.Join(s.maint.snapshotDir, req.Name)
		if _, err := os.Lstat(path); err == nil {
			return errorf(http.StatusConflict, "name: %q exists in the snapshot directory; choose another name", req.Name)
		}
		op = MaintenanceOperation{Kind: OpSnapshot, DryRun: req.DryRun}
		op.Request, _ = json.Marshal(req)
		fn = func(ctx context.Context, _ func(maintenance.MemberDefrag)) (any, error) {
			return c.m.SnapshotFile(ctx, path, maintenance.SnapshotRequest{DryRun: req.DryRun})
		}
	default:
		return errorf(http.StatusNotFound, "unknown maintenance operation %q: POST defrag, compact or snapshot", kind)
	}
	op.Trigger = TriggerAPI
	op, err = s.maint.start(c, op, fn)
	if err != nil {
		return err
	}
	w.Header().Set("Location", strings.NewReplacer("{name}", url.PathEscape(c.name), "{op}", op.ID).Replace(PathMaintenanceOp))
	reply(w, r, http.StatusAccepted, op)
	return nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and trailing
// data; an empty body is an empty object.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "malformed JSON body: data after the object")
	}
	return nil
}
