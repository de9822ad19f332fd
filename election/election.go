package election

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// Candidate takes part in the election under a prefix. The leader is the candidate
// whose key is the oldest under the prefix; its key's value is its ID.
type Candidate struct {
	cli    *clientv3.Client
	dir    string
	id     string
	o      options
	holder *ownership.Holder
	claim  *ownership.Claim // acquire, hold, release: the same core as a lock's

	cbMu sync.Mutex // callbacks run one at a time

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // defeat watchers
}

// New returns a Candidate with id (its key's value, shown by Leader and Observer) in the
// election under prefix. It does not block: the lease is granted by the first Campaign
// (with WithSession, tracking of that session's lease starts at once).
// Options: WithTTL, WithSession, WithLogger, OnElected, OnDefeat, OnNewLeader.
func New(cli *clientv3.Client, prefix, id string, opts ...Option) (*Candidate, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if strings.TrimRight(prefix, "/") == "" {
		return nil, fmt.Errorf("%w: empty prefix", ErrInvalidArgument)
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty candidate ID", ErrInvalidArgument)
	}
	o, err := buildOptions(forCandidate, opts)
	if err != nil {
		return nil, err
	}
	dir := strings.TrimRight(prefix, "/") + "/"
	holder := ownership.NewHolder(cli, o.ttl, o.session, o.logger)
	return &Candidate{
		cli: cli, dir: dir, id: id, o: o, holder: holder,
		claim: ownership.NewClaim(holder, dir, id, ownership.Predecessor(dir), vocab),
	}, nil
}

// ID returns the candidate's ID.
func (c *Candidate) ID() string { return c.id }

func (c *Candidate) callback(fn func()) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	fn()
}

// Campaign blocks until the candidate leads, ctx ends, or its session is lost. It
// waits only for the candidate just ahead of it, and returns success only after reading
// its own key back with its create revision while its lease is known to be alive. A
// canceled Campaign removes its key. Campaign on a leader returns nil at once.
func (c *Candidate) Campaign(ctx context.Context) error {
	if err := c.claim.Acquire(ctx, true); err != nil {
		if errors.Is(err, ErrBusy) && c.claim.Held() {
			return nil // already leading
		}
		return err
	}
	h := c.claim.Last()
	done := h.Done() // leadership is always monitored
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		h.Abandon() // bounded; finished in the background if etcd does not answer
		return ErrClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	rev := h.Rev()
	c.o.logger.Info("elected", zap.String("id", c.id), zap.Int64("token", rev))
	if fn := c.o.onElected; fn != nil {
		c.callback(func() { fn(rev) })
	}
	go func() {
		defer c.wg.Done()
		<-done
		h.Wait()
		err := vocab.Loss(h.Err())
		if err != nil {
			c.o.logger.Warn("leadership lost", zap.String("id", c.id), zap.Error(err))
		}
		if fn := c.o.onDefeat; fn != nil {
			c.callback(func() { fn(err) })
		}
	}()
	return nil
}

// Resign gives up leadership by deleting our key (a name no other leadership ever has).
// It returns ErrNotLeader when we do not lead. After a network error it is unknown
// whether the delete was applied: we still lead, and Resign may be retried.
func (c *Candidate) Resign(ctx context.Context) error { return c.claim.Release(ctx) }

// IsLeader reports whether the candidate leads, as far as is known without I/O.
func (c *Candidate) IsLeader() bool { return c.claim.Held() }

// Leader returns the current leader (ErrNoLeader when there is none).
func (c *Candidate) Leader(ctx context.Context) (Leader, error) {
	if ctx == nil {
		return Leader{}, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	resp, err := c.cli.Get(ctx, c.dir, clientv3.WithFirstCreate()...)
	if err != nil {
		return Leader{}, err
	}
	if len(resp.Kvs) == 0 {
		return Leader{}, ErrNoLeader
	}
	kv := resp.Kvs[0]
	return Leader{ID: string(kv.Value), Key: string(kv.Key), Token: kv.CreateRevision}, nil
}

// Key returns our key: the one we campaign with, then that of the current or last
// leadership ("" before the first Campaign).
func (c *Candidate) Key() string { return c.claim.Key() }

// Token returns the fencing token of the current leadership (0 when not leading): our
// key's create revision, strictly increasing from one leader to the next.
func (c *Candidate) Token() int64 { return c.claim.Token() }

// LeaderCmp returns a comparison that holds in a transaction only while we lead.
func (c *Candidate) LeaderCmp() clientv3.Cmp { return c.claim.Cmp() }

// Do applies ops in one transaction only if we still lead when etcd applies it;
// otherwise it returns ErrNotLeader and the leadership ends.
func (c *Candidate) Do(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	return c.claim.Do(ctx, ops...)
}

// Done returns a channel closed when the current leadership ends: Resign, our key
// deleted, the session lost, or keep-alives silent long enough that etcd may expire
// the lease (closed a margin before it could). Closed when not leading.
func (c *Candidate) Done() <-chan struct{} { return c.claim.Done() }

// Err returns nil while leading, after Resign, or before any Campaign, and an error
// wrapping ErrLost (and the cause) after leadership was lost.
func (c *Candidate) Err() error { return c.claim.Err() }

// Run campaigns, runs fn with a context canceled the moment leadership is lost (or ctx
// ends), and campaigns again after a loss — automatic failover — until ctx ends. A lost
// lease of our own is replaced. When fn returns while we still lead, Run resigns and
// returns fn's error (nil: the work is done). Run returns ctx's error when ctx ends, and
// ErrSessionLost when a session given by WithSession is lost.
func (c *Candidate) Run(ctx context.Context, fn func(leaderCtx context.Context) error) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if fn == nil {
		return fmt.Errorf("%w: nil function", ErrInvalidArgument)
	}
	if c.o.onNewLeader != nil {
		obs, err := NewObserver(c.cli, c.dir, WithLogger(c.o.logger))
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range obs.Changes() {
				c.callback(func() { c.o.onNewLeader(l) })
			}
		}()
		defer func() {
			_ = obs.Close()
			wg.Wait()
		}()
	}
	// Short: a failed campaign is retried as soon as etcd may answer again.
	retry := backoff.New(50*time.Millisecond, 500*time.Millisecond)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.Campaign(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrClosed) || errors.Is(err, ErrBusy) ||
				(c.o.session != nil && errors.Is(err, ErrSessionLost)) {
				return err
			}
			c.o.logger.Warn("campaign failed; retrying", zap.String("id", c.id), zap.Error(err))
			retry.Wait(ctx)
			continue
		}
		retry.Reset()
		h := c.claim.Last()
		leaderCtx, cancel := context.WithCancel(ctx)
		done := h.Done()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-done:
				cancel()
			case <-leaderCtx.Done():
			}
		}()
		ferr := fn(leaderCtx)
		cancel()
		wg.Wait()
		if h.Check() != nil {
			// Leadership was lost (or ended under fn): campaign again.
			continue
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), c.holder.CleanupTimeout())
		if err := c.Resign(rctx); err != nil && !errors.Is(err, ErrNotLeader) {
			// Never leave a leader that runs nothing: step down now, and delete the key
			// in the background until the delete lands or the lease is gone.
			c.o.logger.Warn("resign failed; stepping down and deleting the key in the background",
				zap.String("id", c.id), zap.Error(err))
			h.Abandon()
		}
		rcancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ferr
	}
}

// Close resigns if leading and, unless WithSession was given, revokes the lease. It
// waits for the candidate's goroutines and is idempotent.
func (c *Candidate) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.claim.Close() // ends a Campaign in flight too, even on a session that lives on
	err := c.holder.Close()
	c.wg.Wait()
	if err != nil {
		return fmt.Errorf("election: close: %w", err)
	}
	return nil
}
