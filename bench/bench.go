package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Runner runs benchmarks against the etcd cluster of the client it was made from.
// A Runner holds no resources between runs; several runs may go at once.
type Runner struct {
	cli  *clientv3.Client
	opts options
}

// New returns a Runner for the cluster cli reaches. cli is used to find the leader, to
// read the members' database sizes, to write the keys a workload reads and to clean
// up; the operations themselves go over connections of the run's own.
func New(cli *clientv3.Client, opts ...Option) (*Runner, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	o := defaultOptions()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Runner{cli: cli, opts: o}, nil
}

// Run executes one benchmark and returns its result. It returns a *ConfigError for a bad
// cfg (a Config.Prefix outside the runner's prefix included), an error matching ErrQuota
// when the quota guard refuses the run, and ctx's error when ctx ends before the run
// does, setup included. Failed operations are not an error of Run: they are counted in
// the Result. Whatever happens, the run's keys are deleted before Run returns (unless
// Config.KeepKeys), within the cleanup timeout.
func (r *Runner) Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = r.opts.prefix
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Defaults()
	cfg.Workload, _ = ParseWorkload(string(cfg.Workload))
	if !strings.HasPrefix(cfg.Prefix, r.opts.prefix) {
		return nil, &ConfigError{Field: "prefix", Reason: fmt.Sprintf("%q is outside %q, the only prefix this runner writes under", cfg.Prefix, r.opts.prefix)}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	endpoints := r.opts.clientConfig.Endpoints
	if len(endpoints) == 0 {
		endpoints = r.cli.Endpoints()
	}
	populated := 0
	switch cfg.Workload {
	case Read, Mixed, Range:
		populated = cfg.KeySpace
	case Delete:
		populated = cfg.KeySpace
		if cfg.Ops > 0 {
			populated = cfg.Ops
		}
	}
	budget, err := r.quotaBudget(ctx, endpoints, cfg, populated)
	if err != nil {
		return nil, err
	}
	if cfg.TargetLeader {
		leader, err := r.leaderEndpoint(ctx, endpoints)
		if err != nil {
			return nil, err
		}
		endpoints = []string{leader}
	}

	conns, err := r.connect(ctx, endpoints, cfg.Connections)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("bench: run id: %w", err)
	}
	prefix := cfg.Prefix + hex.EncodeToString(id) + "/"
	if !cfg.KeepKeys {
		defer r.cleanup(ctx, prefix)
	}
	ks := newKeySpace(prefix, cfg.KeySize)

	value := makeValue(cfg.ValueSize)
	if populated > 0 {
		if err := populate(ctx, conns, ks, value, populated, max(cfg.OpTimeout, setupOpTimeout)); err != nil {
			return nil, err
		}
	}

	r.opts.logger.Info("benchmark starting",
		zap.String("workload", string(cfg.Workload)), zap.Strings("endpoints", endpoints),
		zap.Int("connections", cfg.Connections), zap.Int("clients", cfg.Clients),
		zap.Int("ops", cfg.Ops), zap.Duration("duration", cfg.Duration), zap.Float64("rate", cfg.Rate),
		zap.Int64("quotaBudget", budget))

	res, err := r.execute(ctx, cfg, conns, ks, value, populated, budget)
	if err != nil {
		return nil, err
	}
	if res.Stopped != "" {
		r.opts.logger.Warn("benchmark stopped early", zap.String("reason", res.Stopped))
	}
	r.opts.logger.Info("benchmark finished",
		zap.String("workload", string(cfg.Workload)), zap.Int64("ops", res.Ops),
		zap.Int64("failures", res.Failures), zap.Float64("throughput", res.Throughput),
		zap.Duration("p99", res.Latency.P99))
	return res, nil
}

// execute runs the workers; it is the part of Run whose time is measured.
func (r *Runner) execute(ctx context.Context, cfg Config, conns []*clientv3.Client, ks keySpace, value string, populated int, budget int64) (*Result, error) {
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()

	var limiter *rate.Limiter
	if cfg.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	var (
		next      atomic.Int64 // the next operation index to claim
		completed atomic.Int64 // operations finished, for progress
		g         = newGuard(budget, r.opts.quotaShare, stopRun)
	)
	shards := newShards(cfg.Connections * cfg.Clients)
	workers := make([]*worker, 0, cfg.Connections*cfg.Clients)
	for _, c := range conns {
		for range cfg.Clients {
			workers = append(workers, newWorker(cfg, c, ks, value, populated, shards.next(), g))
		}
	}

	start := time.Now()
	if cfg.Duration > 0 {
		t := time.AfterFunc(cfg.Duration, stopRun)
		defer t.Stop()
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for runCtx.Err() == nil {
				i := next.Add(1) - 1
				if cfg.Ops > 0 && i >= int64(cfg.Ops) {
					return
				}
				if limiter != nil && limiter.Wait(runCtx) != nil {
					return
				}
				if w.do(ctx, i) {
					completed.Add(1)
				}
			}
		})
	}
	progressDone := make(chan struct{})
	var pwg sync.WaitGroup
	if r.opts.progress != nil {
		p := newProgress(r.opts.progress, cfg, start)
		pwg.Go(func() { p.run(progressDone, r.opts.progressInterval, &completed) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(progressDone)
	pwg.Wait()

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := shards.merge(cfg, start, elapsed)
	res.Stopped = g.reason()
	return res, nil
}

// connect opens n connections, giving up as soon as ctx ends.
func (r *Runner) connect(ctx context.Context, endpoints []string, n int) ([]*clientv3.Client, error) {
	conns := make([]*clientv3.Client, 0, n)
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		if err := ctx.Err(); err != nil {
			closeAll()
			return nil, err
		}
		cc := r.opts.clientConfig
		cc.Endpoints = endpoints
		cc.Context = ctx
		if cc.Logger == nil {
			cc.Logger = zap.NewNop()
		}
		c, err := clientv3.New(cc)
		if err != nil {
			closeAll()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("bench: connect: %w", err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// leaderEndpoint asks every endpoint for its status at once and returns the one that
// leads; an unreachable member costs at most the status timeout.
func (r *Runner) leaderEndpoint(ctx context.Context, endpoints []string) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	type answer struct {
		ep     string
		leader bool
		err    error
	}
	answers := make(chan answer, len(endpoints))
	for _, ep := range endpoints {
		go func() {
			st, err := r.cli.Status(sctx, ep)
			a := answer{ep: ep, err: err}
			if err == nil {
				a.leader = st.Header != nil && st.Leader != 0 && st.Header.MemberId == st.Leader
			}
			answers <- a
		}()
	}
	var errs []error
	for range endpoints {
		a := <-answers
		if a.leader {
			return a.ep, nil // the others end with sctx; answers is buffered
		}
		if a.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.ep, a.err))
		}
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("%w among %v", ErrNoLeader, endpoints)
	}
	return "", fmt.Errorf("%w among %v: %w", ErrNoLeader, endpoints, errors.Join(errs...))
}

// cleanup deletes the run's keys even when ctx has ended, within the cleanup timeout.
func (r *Runner) cleanup(ctx context.Context, prefix string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.cleanupTimeout)
	defer cancel()
	if _, err := r.cli.Delete(cctx, prefix, clientv3.WithPrefix()); err != nil {
		r.opts.logger.Warn("benchmark cleanup failed", zap.String("prefix", prefix), zap.Error(err))
	}
}

// setupOpTimeout is the least time a transaction of the setup is given: a short
// OpTimeout is about the measured operations, not the writing of the keys they read.
const setupOpTimeout = 30 * time.Second

// populate writes keys 0..n-1 in transactions of up to 64 puts and 1 MiB, a few at a
// time on each connection, and stops at the first failure or when ctx ends. A
// transaction in flight when ctx ends is not abandoned (it could be applied after the
// cleanup): it finishes, within opTimeout.
func populate(ctx context.Context, conns []*clientv3.Client, ks keySpace, value string, n int, opTimeout time.Duration) error {
	batch := int(max(1, min(64, (1<<20)/int64(ks.size+len(value)))))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
		batches = make(chan int)
	)
	for i := range len(conns) * 4 {
		c := conns[i%len(conns)]
		wg.Go(func() {
			for lo := range batches {
				hi := min(lo+batch, n)
				ops := make([]clientv3.Op, 0, hi-lo)
				for i := lo; i < hi; i++ {
					ops = append(ops, clientv3.OpPut(ks.key(int64(i)), value))
				}
				tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
				_, err := c.Txn(tctx).Then(ops...).Commit()
				cancel()
				if err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = fmt.Errorf("bench: populate keys: %w", err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for lo := 0; lo < n; lo += batch {
		mu.Lock()
		failed := firstEr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		select {
		case batches <- lo:
		case <-ctx.Done():
		}
	}
	close(batches)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return firstEr
}

// keySpace turns an index into a key of a fixed size: the prefix, then the index
// zero-padded to fill the rest.
type keySpace struct {
	prefix string
	size   int
}

func newKeySpace(prefix string, size int) keySpace { return keySpace{prefix: prefix, size: size} }

func (k keySpace) key(i int64) string {
	b := make([]byte, k.size)
	n := copy(b, k.prefix)
	for j := k.size - 1; j >= n; j-- {
		b[j] = byte('0' + i%10)
		i /= 10
	}
	return string(b)
}

// end is the end of the range holding every key of the space.
func (k keySpace) end() string { return clientv3.GetPrefixRangeEnd(k.prefix) }

func makeValue(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}
