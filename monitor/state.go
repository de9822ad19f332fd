package monitor

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// HealthSummary is one health check, as kept in a cluster's history.
type HealthSummary struct {
	Time      time.Time `json:"time"`
	Healthy   bool      `json:"healthy"`
	HasQuorum bool      `json:"hasQuorum"`
	Leader    health.ID `json:"leader"`
	Members   int       `json:"members"`
	Reachable int       `json:"reachable"`
	Error     string    `json:"error,omitempty"`
	// Samples is how many checks the entry stands for in a downsampled history (?step=
	// from a store that keeps rollups): Healthy then means every one was healthy, and
	// Members and Reachable are means. Absent for a single check.
	Samples int `json:"samples,omitempty"`
}

// clusterState is everything the Service knows about one cluster. The loops write it;
// requests only read it, so a request never waits on etcd.
type clusterState struct {
	name        string
	checker     *health.Checker
	collector   *metrics.Collector
	svc         *Service // its alert manager is shared by every cluster
	bench       *bench.Runner
	log         *zap.Logger
	historySize int
	recorder    *recorder // writes history to the store; nil without one

	mu          sync.RWMutex
	report      *health.Report // latest successful check; never modified once stored
	healthErr   error          // error of the latest check, nil when it succeeded
	healthAt    time.Time      // when the latest check finished
	history     []HealthSummary
	snapshot    *metrics.Snapshot
	metricsErr  error
	lastBench   *BenchmarkResponse
	evalMu      sync.Mutex // Evaluate calls from the two loops in turn
	lastLeader  health.ID  // the leader of the latest check that saw one; under mu
	leaderChg   atomic.Int64
	checks      atomic.Int64
	checkErrors atomic.Int64
	collects    atomic.Int64
	collectErrs atomic.Int64
}

// roundTimeout bounds one check or collection. The checker and collector bound each
// member by their own timeouts; this only guards against a round that never ends, and is
// not the interval, so that a short interval does not cut a slow but healthy round short.
func roundTimeout(interval time.Duration) time.Duration { return max(interval, 30*time.Second) }

// checkHealth checks the cluster once, records the result and evaluates the alert rules;
// it reports whether the cluster was found without a leader or a quorum, or could not be
// checked.
func (c *clusterState) checkHealth(ctx context.Context, interval time.Duration) (degraded bool) {
	cctx, cancel := context.WithTimeout(ctx, roundTimeout(interval))
	defer cancel()
	rep, err := c.checker.Check(cctx)
	if ctx.Err() != nil {
		return false // stopping: a check cut short says nothing about the cluster
	}
	degraded = err != nil || !rep.Quorum.HasQuorum || rep.Leader.ID == 0
	c.checks.Add(1)
	sum := HealthSummary{Time: time.Now()}
	if err != nil {
		c.checkErrors.Add(1)
		c.log.Warn("health check failed", zap.Error(err))
		sum.Error = err.Error()
	} else {
		sum.Healthy, sum.HasQuorum, sum.Leader, sum.Members = rep.Healthy, rep.Quorum.HasQuorum, rep.Leader.ID, len(rep.Members)
		for _, m := range rep.Members {
			if m.Reachable {
				sum.Reachable++
			}
		}
	}
	c.mu.Lock()
	if err == nil {
		c.report = rep
		// A change is a leader other than the last one seen; the first leader and a
		// spell without one are not changes.
		if id := rep.Leader.ID; id != 0 {
			if c.lastLeader != 0 && id != c.lastLeader {
				c.leaderChg.Add(1)
			}
			c.lastLeader = id
		}
	}
	c.healthErr, c.healthAt = err, sum.Time
	c.history = append(c.history, sum)
	if n := len(c.history) - c.historySize; n > 0 {
		c.history = slices.Delete(c.history, 0, n)
	}
	c.mu.Unlock()
	c.recorder.healthCheck(c.name, sum, func() []HealthSummary {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return slices.Clone(c.history)
	})
	c.evaluate(ctx)
	return degraded
}

func (c *clusterState) collectMetrics(ctx context.Context, interval time.Duration) {
	cctx, cancel := context.WithTimeout(ctx, roundTimeout(interval))
	defer cancel()
	snap, err := c.collector.Collect(cctx)
	if ctx.Err() != nil {
		return
	}
	c.collects.Add(1)
	if err != nil {
		c.collectErrs.Add(1)
		c.log.Warn("metric collection failed", zap.Error(err))
	}
	c.mu.Lock()
	if err == nil {
		c.snapshot = snap
	}
	c.metricsErr = err
	c.mu.Unlock()
	if err == nil {
		c.recorder.metricSnapshot(c.name, snap, c.collector.History)
	}
	c.evaluate(ctx)
}

// evaluate runs the alert rules over the latest report and snapshot together, so that a
// rule over one is not resolved by an evaluation that lacks it.
func (c *clusterState) evaluate(ctx context.Context) {
	c.evalMu.Lock()
	defer c.evalMu.Unlock()
	rep, snap := c.latest()
	if rep == nil && snap == nil {
		return
	}
	m := c.svc.alertManager()
	if m == nil {
		return // a standby between terms evaluates nothing
	}
	if _, err := m.EvaluateCluster(ctx, c.name, rep, snap); err != nil && ctx.Err() == nil {
		c.log.Warn("alert evaluation failed", zap.Error(err))
	}
}

func (c *clusterState) latest() (*health.Report, *metrics.Snapshot) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.report, c.snapshot
}

type healthView struct {
	report *health.Report
	err    error
	at     time.Time
}

func (c *clusterState) health() healthView {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return healthView{c.report, c.healthErr, c.healthAt}
}

func (c *clusterState) healthHistory() []HealthSummary {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.history)
}

func (c *clusterState) metrics() (*metrics.Snapshot, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.snapshot, c.metricsErr
}

// active returns the cluster's firing alerts.
func (c *clusterState) active() []alert.Alert {
	var out []alert.Alert
	m := c.svc.alertManager()
	if m == nil {
		m = c.svc.alerts
	}
	for _, a := range m.Active() {
		if a.Labels["cluster"] == c.name {
			out = append(out, a)
		}
	}
	return out
}
