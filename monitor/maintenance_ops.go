package monitor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// Kinds of maintenance operation.
const (
	OpDefragment     = "defragment"
	OpCompact        = "compact"
	OpSnapshot       = "snapshot"
	OpRecoverNoSpace = "recover-nospace"
)

// States of a maintenance operation.
const (
	OpRunning   = "running"
	OpSucceeded = "succeeded"
	OpFailed    = "failed"
	// OpCancelled is an operation cut short by the Service's shutdown (Interrupt or
	// Close). A member whose defragmentation was under way may still finish it: etcd
	// does not stop a defragmentation whose caller went away.
	OpCancelled = "cancelled"
)

// Triggers of a maintenance operation.
const (
	TriggerAPI         = "api"
	TriggerRemediation = "remediation"
)

// MaintenanceOperation is one maintenance operation of a cluster, as the API shows it and
// the store keeps it: what was asked, how far it got, and the maintenance package's
// report of it.
type MaintenanceOperation struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	// Kind is defragment, compact, snapshot or recover-nospace.
	Kind string `json:"kind"`
	// State is running, succeeded, failed or cancelled.
	State    string    `json:"state"`
	DryRun   bool      `json:"dryRun"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Trigger is "api" (a request) or "remediation" (the Service, answering an alert).
	Trigger string `json:"trigger"`
	// Alert is the fingerprint of the alert a remediation answers; AlertName its rule.
	Alert     string `json:"alert,omitempty"`
	AlertName string `json:"alertName,omitempty"`
	// Alerts are the fingerprints of every alert the remediation answers (Alert first):
	// one operation answers a condition several members report.
	Alerts []string `json:"alerts,omitempty"`
	// Request is what was asked (a DefragRequest, CompactRequest, SnapshotRequest or
	// the remediation's maintenance request).
	Request json.RawMessage `json:"request,omitempty"`
	// Progress lists the members defragmented so far, while the operation runs.
	Progress []MemberProgress `json:"progress,omitempty"`
	// Report is the maintenance package's report (DefragmentReport, CompactReport,
	// SnapshotReport, NoSpaceReport): the plan of a dry run, what was done otherwise.
	// As everywhere in the API, durations are float seconds: each "duration" of the
	// package's JSON is a "durationSeconds" here.
	Report json.RawMessage `json:"report,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// MemberProgress is one member's defragmentation, as an operation in flight shows it.
type MemberProgress struct {
	ID              health.ID `json:"id"`
	Name            string    `json:"name"`
	State           string    `json:"state"`
	DBSizeBefore    int64     `json:"dbSizeBefore"`
	DBSizeAfter     int64     `json:"dbSizeAfter,omitempty"`
	DurationSeconds float64   `json:"durationSeconds"`
	Error           string    `json:"error,omitempty"`
}

func memberProgress(md maintenance.MemberDefrag) MemberProgress {
	return MemberProgress{ID: md.ID, Name: md.Name, State: md.State, DBSizeBefore: md.DBSizeBefore, DBSizeAfter: md.DBSizeAfter,
		DurationSeconds: md.Duration.Seconds(), Error: md.Error}
}

// apiJSON marshals one of the maintenance package's values with the API's duration
// convention: every "duration" (nanoseconds) becomes "durationSeconds" (float seconds).
func apiJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if dec.Decode(&tree) != nil {
		return b
	}
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if d, ok := n["duration"].(json.Number); ok {
				if ns, err := d.Int64(); err == nil {
					delete(n, "duration")
					n["durationSeconds"] = time.Duration(ns).Seconds()
				}
			}
			for _, c := range n {
				walk(c)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		}
	}
	walk(tree)
	if out, err := json.Marshal(tree); err == nil {
		return out
	}
	return b
}

// record is op as the store keeps it.
func (op MaintenanceOperation) record() (store.MaintenanceOp, error) {
	data, err := json.Marshal(op)
	return store.MaintenanceOp{ID: op.ID, Cluster: op.Cluster, Kind: op.Kind, State: op.State, Started: op.Started,
		Finished: op.Finished, Alert: op.Alert, DryRun: op.DryRun, Data: data}, err
}

// operation reads a stored record; a record this package did not write shows its fields.
func storedOperation(rec store.MaintenanceOp) MaintenanceOperation {
	var op MaintenanceOperation
	if json.Unmarshal(rec.Data, &op) != nil || op.ID != rec.ID {
		op = MaintenanceOperation{}
	}
	op.ID, op.Cluster, op.Kind, op.State, op.Started, op.Finished, op.Alert, op.DryRun =
		rec.ID, rec.Cluster, rec.Kind, rec.State, rec.Started, rec.Finished, rec.Alert, rec.DryRun
	return op
}

// maintenanceOptions are the Service's options about maintenance (maintenance_api.go,
// remediation.go).
type maintenanceOptions struct {
	snapshotDir string
	remediation map[string]Remediation
	markEvery   time.Duration
	markKeep    time.Duration
}

// WithRevisionMarks makes the Service write a revision mark (maintenance.Maintainer.Mark:
// one small key under /etcd-monitor/maintenance/marks/) into each cluster every every,
// and delete the marks older than keep, so that a compaction may keep "everything newer
// than a duration" (POST .../maintenance/compact {"retain":"24h"}) up to keep back, to
// within every. Default: off, and such compactions fail for want of marks. Both must be
// positive, keep at least every.
func WithRevisionMarks(every, keep time.Duration) Option {
	return optionFunc(func(o *options) { o.maint.markEvery, o.maint.markKeep = every, keep })
}

// maintRunner runs the Service's maintenance operations: one at a time per cluster, in
// the background, each persisted when it starts, after each defragmented member and
// when it ends.
type maintRunner struct {
	s           *Service
	st          store.Store // the Service's, or one in memory
	snapshotDir string
	clusters    map[string]*clusterMaint
	order       []*clusterMaint
	now         func() time.Time // remediation's clock
}

// clusterMaint is one cluster's maintenance.
type clusterMaint struct {
	name string
	m    *maintenance.Maintainer
	// checker guards m's operations; the Service closes it.
	checker *health.Checker
	log     *zap.Logger
	rem     Remediation

	mu        sync.Mutex
	running   *MaintenanceOperation // the operation in flight, as it stands
	last      *MaintenanceOperation // the last one finished
	acted     map[string]acted      // remediation: the alerts acted on, by fingerprint
	failedOps map[string]bool       // remediation: its operations that failed, by ID
	waiting   map[string]bool       // remediation: alerts logged as waiting for the window
}

// opTimeout bounds each write of an operation's record.
const opTimeout = 5 * time.Second

func newMaintRunner(s *Service, clusters []Cluster) (*maintRunner, error) {
	o := s.opts.maint
	r := &maintRunner{s: s, st: s.opts.store, clusters: map[string]*clusterMaint{}, now: time.Now}
	if r.st == nil {
		r.st = store.NewMemory()
	}
	if o.snapshotDir != "" {
		if !filepath.IsAbs(o.snapshotDir) {
			return nil, fmt.Errorf("%w: WithSnapshotDir: %q is not an absolute path", ErrInvalidArgument, o.snapshotDir)
		}
		fi, err := os.Stat(o.snapshotDir)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%w: WithSnapshotDir: %q is not a directory", ErrInvalidArgument, o.snapshotDir)
		}
		r.snapshotDir = filepath.Clean(o.snapshotDir)
	}
	if o.markEvery != 0 || o.markKeep != 0 {
		if o.markEvery <= 0 || o.markKeep < o.markEvery {
			return nil, fmt.Errorf("%w: WithRevisionMarks(%v, %v): every must be positive and keep at least every", ErrInvalidArgument, o.markEvery, o.markKeep)
		}
	}
	for name := range o.remediation {
		if !slices.ContainsFunc(clusters, func(c Cluster) bool { return c.Name == name }) {
			return nil, fmt.Errorf("%w: WithRemediation: unknown cluster %q", ErrInvalidArgument, name)
		}
	}
	for _, c := range clusters {
		log := s.opts.logger.With(zap.String("cluster", c.Name))
		// A checker of its own, so that maintenance checks do not count in the cluster's
		// health history.
		checker, err := health.New(c.Client, append([]health.Option{health.WithLogger(log)}, c.Health...)...)
		if err != nil {
			return nil, fmt.Errorf("monitor: cluster %q: maintenance: %w", c.Name, err)
		}
		m, err := maintenance.New(c.Client, maintenance.WithChecker(checker), maintenance.WithLogger(log.Named("maintenance")))
		if err != nil {
			checker.Close()
			r.close()
			return nil, fmt.Errorf("monitor: cluster %q: maintenance: %w", c.Name, err)
		}
		rem := o.remediation[c.Name]
		if err := rem.validate(); err != nil {
			checker.Close()
			r.close()
			return nil, fmt.Errorf("%w: WithRemediation(%q): %w", ErrInvalidArgument, c.Name, err)
		}
		cm := &clusterMaint{name: c.Name, m: m, checker: checker, log: log, rem: rem.withDefaults(), acted: map[string]acted{}, failedOps: map[string]bool{},
			waiting: map[string]bool{}}
		r.clusters[c.Name] = cm
		r.order = append(r.order, cm)
	}
	return r, nil
}

// close closes the connections the clusters' checkers keep. Operations must have ended.
func (r *maintRunner) close() error {
	var errs []error
	for _, c := range r.order {
		errs = append(errs, c.checker.Close())
	}
	return errors.Join(errs...)
}

// opFunc does an operation's work; progress records a defragmented member.
type opFunc func(ctx context.Context, progress func(maintenance.MemberDefrag)) (report any, err error)

// errBusy is the answer while another operation of the cluster runs.
func errBusy(c *clusterMaint, running *MaintenanceOperation) error {
	return errorf(http.StatusConflict, "cluster %s: operation %s (%s, started %s) is running; one maintenance operation runs at a time",
		c.name, running.ID, running.Kind, running.Started.UTC().Format(time.RFC3339))
}

// start records op as running and does fn in the background. It returns the record as
// it starts, or an error: 409 while another operation of the cluster runs, 503 once the
// Service shuts down or on a standby replica between terms.
func (r *maintRunner) start(c *clusterMaint, op MaintenanceOperation, fn opFunc) (MaintenanceOperation, error) {
	s := r.s
	if s.opts.standby && s.alertManager() == nil {
		// The active replica (its remediation, its API) may run an operation on this
		// cluster: one at a time holds across replicas only if standbys start none.
		msg := "this replica is a standby: maintenance operations run on the active replica"
		if s.opts.replica != nil {
			if rs := s.opts.replica(); rs.ActiveID != "" {
				msg += " (" + rs.ActiveID + ")"
			}
		}
		return op, errorf(http.StatusServiceUnavailable, "%s", msg)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.mu.Lock()
	if s.closed || isClosed(s.interrupted) {
		s.mu.Unlock()
		return op, errorf(http.StatusServiceUnavailable, "service is shutting down")
	}
	if c.running != nil {
		s.mu.Unlock()
		return op, errBusy(c, c.running)
	}
	s.wg.Add(1)
	s.mu.Unlock()

	op.ID, op.Cluster, op.State, op.Started = newOpID(), c.name, OpRunning, time.Now().UTC()
	cp := op
	c.running = &cp
	c.log.Info("maintenance operation started", zap.String("id", op.ID), zap.String("kind", op.Kind), zap.Bool("dryRun", op.DryRun),
		zap.String("trigger", op.Trigger), zap.String("alert", op.Alert), zap.String("alertName", op.AlertName), zap.ByteString("request", op.Request))
	go r.run(c, op, fn)
	return op, nil
}

func (r *maintRunner) run(c *clusterMaint, op MaintenanceOperation, fn opFunc) {
	defer r.s.wg.Done()
	r.save(op, c.log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.s.interrupted:
			cancel()
		case <-ctx.Done():
		}
	}()
	progress := func(md maintenance.MemberDefrag) {
		op.Progress = append(slices.Clip(op.Progress), memberProgress(md))
		c.mu.Lock()
		cp := op
		c.running = &cp
		c.mu.Unlock()
		r.save(op, c.log)
	}
	rep, err := fn(ctx, progress)
	op.Finished = time.Now().UTC()
	if rep != nil && !reflect.ValueOf(rep).IsNil() {
		op.Report = apiJSON(rep)
	}
	switch {
	case err == nil:
		op.State = OpSucceeded
	case ctx.Err() != nil:
		op.State, op.Error = OpCancelled, "cancelled: the service is shutting down: "+err.Error()
	default:
		op.State, op.Error = OpFailed, err.Error()
	}
	op.Progress = nil // the report has every member
	r.save(op, c.log)
	fields := []zap.Field{zap.String("id", op.ID), zap.String("kind", op.Kind), zap.String("state", op.State),
		zap.Bool("dryRun", op.DryRun), zap.String("alert", op.Alert), zap.Duration("took", op.Finished.Sub(op.Started))}
	if err != nil {
		c.log.Warn("maintenance operation ended", append(fields, zap.Error(err))...)
	} else {
		c.log.Info("maintenance operation ended", fields...)
	}
	c.mu.Lock()
	// A failed remediation is retried sooner, unless only a person can help: when the
	// live data itself fills the quota, compacting and defragmenting every member again
	// every RetryFailed would only pause members for nothing.
	if op.Trigger == TriggerRemediation && op.State == OpFailed && !errors.Is(err, maintenance.ErrOverQuota) {
		c.failedOps[op.ID] = true
	}
	c.running, c.last = nil, &op
	c.mu.Unlock()
}

// save writes op to the store. A failure is logged: the operation goes on, and GET shows
// it from memory while it runs.
func (r *maintRunner) save(op MaintenanceOperation, log *zap.Logger) {
	rec, err := op.record()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		err = r.st.PutMaintenanceOp(ctx, rec)
		cancel()
	}
	if err != nil {
		log.Warn("maintenance operation not stored", zap.String("id", op.ID), zap.String("state", op.State), zap.Error(err))
	}
}

// current returns the operation of c in flight, if any.
func (c *clusterMaint) current() (MaintenanceOperation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running == nil {
		return MaintenanceOperation{}, false
	}
	return *c.running, true
}

// recent returns the operation in flight and the last one finished, those there are.
func (c *clusterMaint) recent() []MaintenanceOperation {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []MaintenanceOperation
	for _, op := range []*MaintenanceOperation{c.running, c.last} {
		if op != nil {
			out = append(out, *op)
		}
	}
	return out
}

// list returns c's operations, newest first: the stored ones, with the one in flight
// and the last one finished as this process knows them (a store that writes in the
// background may lag behind).
func (r *maintRunner) list(ctx context.Context, c *clusterMaint, limit int) ([]MaintenanceOperation, error) {
	recs, err := r.st.MaintenanceOps(ctx, store.MaintenanceQuery{Cluster: c.name, Limit: limit})
	if err != nil {
		return nil, err
	}
	mem := c.recent()
	out := make([]MaintenanceOperation, 0, len(recs)+len(mem))
	for _, rec := range recs {
		if i := slices.IndexFunc(mem, func(op MaintenanceOperation) bool { return op.ID == rec.ID }); i >= 0 {
			out = append(out, mem[i])
			mem = slices.Delete(mem, i, i+1)
			continue
		}
		out = append(out, storedOperation(rec))
	}
	if len(mem) > 0 {
		out = append(out, mem...)
		slices.SortStableFunc(out, func(a, b MaintenanceOperation) int { return b.Started.Compare(a.Started) })
		out = out[:min(len(out), limit)]
	}
	return out, nil
}

func newOpID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// runRemediation starts each cluster's remediation loop (for clusters with
// remediation) and revision marks (WithRevisionMarks) on wg, until ctx ends.
func (r *maintRunner) runRemediation(ctx context.Context, wg *sync.WaitGroup) {
	interval := min(r.s.opts.healthInterval, r.s.opts.metricsInterval)
	o := r.s.opts.maint
	for _, c := range r.order {
		if c.rem.enabled() {
			wg.Go(func() { every(ctx, interval, func(ctx context.Context) { r.remediate(ctx, c) }) })
		}
		if o.markEvery > 0 {
			wg.Go(func() { every(ctx, o.markEvery, func(ctx context.Context) { c.mark(ctx, o.markKeep) }) })
		}
	}
}

// mark writes a revision mark and deletes those older than keep. Failures are logged:
// the next round tries again.
func (c *clusterMaint) mark(ctx context.Context, keep time.Duration) {
	tctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	mk, err := c.m.Mark(tctx)
	if err == nil {
		_, err = c.m.PruneMarks(tctx, mk.Time.Add(-keep))
	}
	if err != nil && ctx.Err() == nil { // not when stopping
		c.log.Warn("revision mark", zap.Error(err))
	}
}
