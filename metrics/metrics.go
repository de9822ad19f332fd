package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
)

// probeKey is the key latency probes read, as etcdctl endpoint health does.
const probeKey = "health"

// Collector collects metric snapshots of a cluster. Use New.
type Collector struct {
	cli      *clientv3.Client
	opts     options
	http     *memberhttp.Clients
	exporter *exporter

	mu          sync.Mutex
	lastMembers []member
	prev        map[uint64]*raw
	seen        map[uint64]bool // members with exported series
	history     []*Snapshot
	conns       *memberhttp.Share // the probes', kept between collections (shared with health)
	closed      bool
}

type member struct {
	id         uint64
	name       string
	endpoint   string
	metricsURL string
	unix       bool // metricsURL's host names a unix socket
}

// metricsURL returns where a member serves /metrics, and whether that is through a unix
// socket (etcd serves HTTP on every client URL).
func metricsURL(clientURLs []string) (string, bool) {
	base, unix := memberhttp.Base(clientURLs)
	if base == "" {
		return "", false
	}
	return base + "/metrics", unix
}

// New returns a Collector of the cluster cli belongs to. cli stays the caller's.
func New(cli *clientv3.Client, opts ...Option) (*Collector, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	c := &Collector{cli: cli, opts: o, http: memberhttp.NewClients(o.httpClient),
		prev: map[uint64]*raw{}, seen: map[uint64]bool{}, conns: memberhttp.ConnsOf(cli)}
	c.exporter = newExporter(c)
	if o.registerer != nil {
		if err := o.registerer.Register(c.exporter); err != nil {
			c.conns.Close()
			return nil, fmt.Errorf("metrics: register exporter: %w", err)
		}
	}
	return c, nil
}

// Exporter returns the prometheus.Collector that exports the latest snapshot, for
// registering with a registry of the caller's choice. Exporting never scrapes etcd.
func (c *Collector) Exporter() prometheus.Collector { return c.exporter }

// Close closes the connections the Collector keeps to the members (its probe
// connections, which a health.Checker of the same client shares until it closes too, and
// its idle HTTP connections unless WithHTTPClient gave the client), and
// unregisters the exporter if New registered it. A probe in flight keeps its connection
// until it ends; a Collect after Close works, keeping nothing. It is idempotent.
func (c *Collector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.conns.Close()
	c.http.Close()
	if c.opts.registerer != nil {
		c.opts.registerer.Unregister(c.exporter)
	}
	return err
}

// Latest returns the most recent snapshot, or nil before the first Collect.
func (c *Collector) Latest() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.history) == 0 {
		return nil
	}
	return c.history[len(c.history)-1]
}

// History returns the kept snapshots, oldest first. Snapshots are never modified after
// Collect returns them, so they may be shared.
func (c *Collector) History() []*Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.history)
}

// Collect probes and scrapes every member, at most WithConcurrency members at once, and
// returns the snapshot, which is also appended to the history. It fails only when the
// membership cannot be read and none is known; a member that cannot be collected carries
// its error in its entry. A member that left the cluster is forgotten: its state and its
// exported series go with it.
func (c *Collector) Collect(ctx context.Context) (*Snapshot, error) {
	start := time.Now()
	defer func() { c.exporter.collection.Observe(time.Since(start).Seconds()) }()
	members, fresh, err := c.members(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	prev := make(map[uint64]*raw, len(c.prev))
	for k, v := range c.prev {
		prev[k] = v
	}
	c.mu.Unlock()

	snap := &Snapshot{Time: start, Members: make([]MemberMetrics, len(members))}
	raws := make([]*raw, len(members))
	samples := make([][]time.Duration, len(members))
	slots := make(chan struct{}, c.opts.concurrency)
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			case <-ctx.Done(): // collectMember fails at once and records why
			}
			snap.Members[i], raws[i], samples[i] = c.collectMember(ctx, m, prev[m.id])
		})
	}
	wg.Wait()

	var all []time.Duration
	var errs int
	for i := range snap.Members {
		all = append(all, samples[i]...)
		errs += snap.Members[i].Latency.Errors
		snap.Throughput += snap.Members[i].Throughput.Requests
	}
	snap.Latency = latency(all, errs)
	snap.Duration = time.Since(start)

	c.mu.Lock()
	for i, m := range members {
		if raws[i] != nil {
			c.prev[m.id] = raws[i]
		}
	}
	if fresh {
		c.forget(members)
	}
	c.history = append(c.history, snap)
	if n := len(c.history) - c.opts.historySize; n > 0 {
		clear(c.history[:n])
		c.history = slices.Delete(c.history, 0, n)
	}
	c.mu.Unlock()
	if fresh {
		ids := make([]uint64, len(members))
		for i, m := range members {
			ids[i] = m.id
		}
		c.conns.Keep(ids)
		urls := make([]string, 0, len(members))
		for _, m := range members {
			if m.metricsURL != "" {
				urls = append(urls, m.metricsURL)
			}
		}
		c.http.Keep(urls) // the /metrics connections of members that left close at once
	}
	return snap, nil
}

// forget drops the state and series of members no longer in the membership list.
func (c *Collector) forget(members []member) {
	keep := make(map[uint64]bool, len(members))
	for _, m := range members {
		keep[m.id] = true
	}
	for id := range c.prev {
		if !keep[id] {
			delete(c.prev, id)
		}
	}
	for id := range c.seen {
		if !keep[id] {
			delete(c.seen, id)
			c.exporter.forget(ID(id).Hex())
		}
	}
	for _, m := range members {
		c.seen[m.id] = true
	}
}

// members returns the membership list, and whether it is fresh (false: the last known
// one, because the list could not be read).
func (c *Collector) members(ctx context.Context) ([]member, bool, error) {
	mctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	resp, err := c.cli.MemberList(mctx, clientv3.WithSerializable())
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.lastMembers == nil {
			return nil, false, fmt.Errorf("%w: %w", ErrMembers, err)
		}
		c.opts.logger.Warn("member list failed, using the last known", zap.Error(err))
		return slices.Clone(c.lastMembers), false, nil
	}
	out := make([]member, 0, len(resp.Members))
	for _, pm := range resp.Members {
		m := member{id: pm.ID, name: pm.Name}
		if len(pm.ClientURLs) > 0 {
			m.endpoint = pm.ClientURLs[0]
		}
		m.metricsURL, m.unix = metricsURL(pm.ClientURLs)
		// By hexadecimal ID first, then name, as health.WithEndpoints: given one map, the
		// Checker and the Collector reach a member at one endpoint, over the connection
		// they share (memberhttp.ConnsOf), instead of one each.
		if ep, ok := c.opts.endpoints[ID(pm.ID).Hex()]; ok {
			m.endpoint = ep
		} else if ep, ok := c.opts.endpoints[m.name]; ok && m.name != "" {
			m.endpoint = ep
		}
		if u, ok := c.opts.metricsURLs[m.name]; ok {
			m.metricsURL, m.unix = u, false
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b member) int { return strings.Compare(a.name, b.name) })
	c.lastMembers = slices.Clone(out)
	return out, true, nil
}

func (c *Collector) collectMember(ctx context.Context, m member, prev *raw) (MemberMetrics, *raw, []time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	mm := MemberMetrics{ID: ID(m.id), Name: m.name, Endpoint: m.endpoint, MetricsURL: m.metricsURL}
	id := mm.ID.Hex()

	var samples []time.Duration
	var probeErr, scrapeErr error
	var r *raw
	var wg sync.WaitGroup
	wg.Go(func() {
		var errs int
		samples, errs, probeErr = c.probe(ctx, m)
		mm.Latency = latency(samples, errs)
		c.exporter.observeProbes(id, samples, errs)
	})
	wg.Go(func() {
		if m.metricsURL == "" {
			scrapeErr = fmt.Errorf("%w: %w for member %s", ErrScrape, ErrNoMetricsURL, m.name)
			c.exporter.observeScrape(id, 0, 0, scrapeErr)
			return
		}
		t0 := time.Now()
		p, size, err := scrape(ctx, c.http, m.metricsURL, m.unix)
		c.exporter.observeScrape(id, time.Since(t0), size, err)
		if err != nil {
			scrapeErr = fmt.Errorf("%w: %w", ErrScrape, err)
			return
		}
		r = fill(&mm, p, time.Now(), prev)
	})
	wg.Wait()
	if err := errors.Join(probeErr, scrapeErr); err != nil {
		mm.Err, mm.Error = err, err.Error()
	}
	return mm, r, samples
}

// probe times linearizable reads through one member. A first read through a new
// connection, which also connects, is not counted. It returns the successful samples,
// the number of failed probes and the first error.
func (c *Collector) probe(ctx context.Context, m member) ([]time.Duration, int, error) {
	n := c.opts.samples
	if m.endpoint == "" {
		return nil, n, fmt.Errorf("%w: no endpoint", ErrProbe)
	}
	pc, fresh, err := c.conns.Get(m.id, m.endpoint)
	if err != nil {
		return nil, n, fmt.Errorf("%w: %s: %w", ErrProbe, m.endpoint, err)
	}
	samples, failed, err := probeConnection(ctx, pb.NewKVClient(pc.ClientConn()), m.endpoint, n, fresh)
	pc.Release(err != nil)
	return samples, failed, err
}

func probeConnection(ctx context.Context, kv pb.KVClient, endpoint string, n int, fresh bool) ([]time.Duration, int, error) {
	req := &pb.RangeRequest{Key: []byte(probeKey), Limit: 1, CountOnly: true}
	// The warm-up connects; its outcome shows in the samples that follow.
	if fresh {
		if _, err := kv.Range(ctx, req); err != nil && ctx.Err() != nil {
			return nil, n, fmt.Errorf("%w: %s: %w", ErrProbe, endpoint, err)
		}
	}
	samples := make([]time.Duration, 0, n)
	var first error
	failed := 0
	for range n {
		t0 := time.Now()
		_, err := kv.Range(ctx, req)
		if err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("%w: %s: %w", ErrProbe, endpoint, err)
			}
			if ctx.Err() != nil {
				failed = n - len(samples)
				break
			}
			continue
		}
		samples = append(samples, time.Since(t0))
	}
	return samples, failed, first
}

// latency summarises samples by nearest rank.
func latency(samples []time.Duration, errs int) Latency {
	l := Latency{Samples: len(samples), Errors: errs}
	if len(samples) == 0 {
		return l
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	l.P50, l.P95, l.P99, l.Max = rank(0.50), rank(0.95), rank(0.99), s[len(s)-1]
	return l
}
