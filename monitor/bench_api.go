package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// BenchmarkResponse is the body of a successful POST /api/v1/clusters/{name}/benchmark,
// and what GET .../benchmarks lists as each stored result.
type BenchmarkResponse struct {
	Cluster string          `json:"cluster"`
	Result  *bench.Result   `json:"result"`
	SLO     bench.SLOReport `json:"slo"`
}

// BenchmarkRequestBody documents the body of POST .../benchmark (ParseBenchmarkRequest
// reads it): the fields of bench.Config, durations in seconds or as Go duration
// strings, and optionally the SLO to check the result against instead of the service's.
type BenchmarkRequestBody struct {
	// Workload (or its alias Type) is write, read, mixed, range, delete or txn.
	Workload    string  `json:"workload,omitempty"`
	Type        string  `json:"type,omitempty"`
	Connections int     `json:"connections,omitempty"`
	Clients     int     `json:"clients,omitempty"`
	KeySize     int     `json:"keySize,omitempty"`
	ValueSize   int     `json:"valueSize,omitempty"`
	Ops         int     `json:"ops,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	ReadRatio   float64 `json:"readRatio,omitempty"`
	KeySpace    int     `json:"keySpace,omitempty"`
	RangeLimit  int     `json:"rangeLimit,omitempty"`
	TxnOps      int     `json:"txnOps,omitempty"`
	// Consistency is linearizable or serializable.
	Consistency  string `json:"consistency,omitempty"`
	TargetLeader bool   `json:"targetLeader,omitempty"`
	Prefix       string `json:"prefix,omitempty"`
	KeepKeys     bool   `json:"keepKeys,omitempty"`
	// DurationSeconds bounds the run by time; Duration is the same as a Go duration
	// string ("10s"). Give one.
	DurationSeconds  float64 `json:"durationSeconds,omitempty"`
	Duration         string  `json:"duration,omitempty"`
	OpTimeoutSeconds float64 `json:"opTimeoutSeconds,omitempty"`
	OpTimeout        string  `json:"opTimeout,omitempty"`
	// SLO replaces the service's objectives for this run.
	SLO *bench.SLO `json:"slo,omitempty"`
}

// BenchmarkRequest is a parsed body of POST .../benchmark.
type BenchmarkRequest struct {
	Config bench.Config
	SLO    *bench.SLO
}

// ParseBenchmarkRequest reads a request body (see BenchmarkRequestBody); errors name the
// field at fault.
func ParseBenchmarkRequest(body []byte) (BenchmarkRequest, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return BenchmarkRequest{}, fmt.Errorf("malformed JSON body: %w", err)
	}
	var req BenchmarkRequest
	if raw, ok := fields["slo"]; ok {
		var slo bench.SLO
		if err := json.Unmarshal(raw, &slo); err != nil {
			return req, fmt.Errorf("slo: %w", err)
		}
		req.SLO = &slo
		delete(fields, "slo")
	}
	if raw, ok := fields["type"]; ok {
		if _, dup := fields["workload"]; dup {
			return req, errors.New(`give "workload" or "type", not both`)
		}
		fields["workload"] = raw
		delete(fields, "type")
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		return req, err
	}
	if err := json.Unmarshal(rest, &req.Config); err != nil {
		return req, err
	}
	if req.Config.Workload != "" {
		w, err := bench.ParseWorkload(string(req.Config.Workload))
		if err != nil {
			return req, err
		}
		req.Config.Workload = w
	}
	return req, req.Config.Validate()
}

func (s *Service) postBenchmark(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	lim := s.opts.benchmark
	if lim.Disabled {
		return nil, errorf(http.StatusForbidden, "benchmarks are disabled on this service")
	}
	body, err := readBody(r, maxBenchmarkBody)
	if err != nil {
		return nil, err
	}
	req, err := ParseBenchmarkRequest(body)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	cfg := req.Config
	if cfg.Ops > lim.MaxOps {
		return nil, errorf(http.StatusBadRequest, "ops %d is over this service's limit of %d", cfg.Ops, lim.MaxOps)
	}
	if cfg.Duration > lim.MaxDuration {
		return nil, errorf(http.StatusBadRequest, "duration %v is over this service's limit of %v", cfg.Duration, lim.MaxDuration)
	}
	slo := lim.SLO
	if req.SLO != nil {
		slo = *req.SLO
	}

	if !s.benchMu.TryLock() {
		return nil, errorf(http.StatusConflict, "a benchmark is already running")
	}
	defer s.benchMu.Unlock()
	s.mu.Lock()
	if s.closed || isClosed(s.interrupted) {
		s.mu.Unlock()
		return nil, errorf(http.StatusServiceUnavailable, "service is shutting down")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithTimeout(r.Context(), lim.Timeout)
	defer cancel()
	go func() {
		select {
		case <-s.interrupted:
			cancel()
		case <-ctx.Done():
		}
	}()
	res, err := q.cluster.bench.Run(ctx, cfg)
	switch {
	case err == nil:
	case errors.Is(err, bench.ErrInvalidArgument):
		return nil, errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, bench.ErrQuota):
		return nil, errorf(http.StatusUnprocessableEntity, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, errorf(http.StatusGatewayTimeout, "benchmark did not finish within %v", lim.Timeout)
	case errors.Is(err, context.Canceled) && isClosed(s.interrupted):
		q.cluster.log.Info("benchmark cancelled: the service is shutting down")
		return nil, errorf(http.StatusServiceUnavailable, "benchmark cancelled: the service is shutting down")
	case errors.Is(err, context.Canceled):
		return nil, errorf(http.StatusServiceUnavailable, "benchmark cancelled")
	default:
		return nil, errorf(http.StatusBadGateway, "benchmark: %v", err)
	}
	resp := &BenchmarkResponse{Cluster: q.cluster.name, Result: res, SLO: slo.Check(res)}
	q.cluster.mu.Lock()
	q.cluster.lastBench = resp
	q.cluster.mu.Unlock()
	s.saveBenchmark(resp)
	return resp, nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// saveBenchmark keeps a result in the store, when there is one. A failure is logged: the
// caller has the result in the answer.
func (s *Service) saveBenchmark(resp *BenchmarkResponse) {
	if s.opts.store == nil {
		return
	}
	data, err := json.Marshal(resp)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		now := time.Now()
		err = s.opts.store.PutBenchmark(ctx, store.Benchmark{ID: fmt.Sprintf("%s-%d", resp.Cluster, now.UnixNano()), Time: now,
			Cluster: resp.Cluster, Name: string(resp.Result.Workload), Data: bytes.TrimSpace(data)})
	}
	if err != nil {
		s.opts.logger.Warn("benchmark result not stored", zap.String("cluster", resp.Cluster), zap.Error(err))
	}
}
