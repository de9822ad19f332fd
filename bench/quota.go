package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// putCost is what one put (or, with valueSize 0, one delete's tombstone) can add to a
// member's database before a compaction: the key and value twice over (bbolt pages are
// rarely full, and every revision is kept until compacted) plus the revision key and the
// record's envelope. It errs on the high side on purpose.
func putCost(keySize, valueSize int) int64 { return 2*(int64(keySize)+int64(valueSize)) + 256 }

// writeCost is the most one operation of cfg can add.
func writeCost(cfg Config) int64 {
	switch cfg.Workload {
	case Write, Mixed:
		return putCost(cfg.KeySize, cfg.ValueSize)
	case Txn:
		return int64(cfg.TxnOps) * putCost(cfg.KeySize, cfg.ValueSize)
	case Delete:
		return putCost(cfg.KeySize, 0)
	}
	return 0
}

// quotaBudget returns how many bytes the run may add to the database of the fullest
// member before that member passes the quota share. It refuses (ErrQuota) a run whose
// setup alone, or whose every operation when bounded by Ops alone, could pass it, and a
// run when no member's size can be read.
func (r *Runner) quotaBudget(ctx context.Context, endpoints []string, cfg Config, populated int) (int64, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		room   int64 = -1
		errs   []error
		seen   int
		detail string
	)
	for _, ep := range endpoints {
		wg.Go(func() {
			st, err := r.cli.Status(sctx, ep)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ep, err))
				return
			}
			seen++
			quota := st.DbSizeQuota
			if quota <= 0 {
				quota = DefaultQuotaBytes
			}
			limit := int64(r.opts.quotaShare * float64(quota))
			if left := limit - st.DbSize; room < 0 || left < room {
				room = max(left, 0)
				detail = fmt.Sprintf("%s holds %d bytes; %.0f%% of its %d-byte quota is %d", ep, st.DbSize, 100*r.opts.quotaShare, quota, limit)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if seen == 0 {
		return 0, fmt.Errorf("%w: cannot read any member's database size: %w", ErrQuota, errors.Join(errs...))
	}
	setup := int64(populated) * putCost(cfg.KeySize, cfg.ValueSize)
	need := setup
	if cfg.Duration == 0 {
		need += int64(cfg.Ops) * writeCost(cfg) // bounded: Ops ≤ MaxOps, cost ≤ 128 × 2.6 MiB
	}
	if need > room {
		return 0, fmt.Errorf("%w: the run could write about %d bytes and only %d fit: %s (WithQuotaShare)", ErrQuota, need, room, detail)
	}
	return room - setup, nil
}

// guard is the quota budget of a running benchmark, shared by its workers.
type guard struct {
	budget int64        // bytes the run may write
	share  float64      // of the quota, for the message
	left   atomic.Int64 // bytes not yet reserved
	stop   func()
	once   sync.Once
	mu     sync.Mutex
	why    string
}

func newGuard(budget int64, share float64, stop func()) *guard {
	g := &guard{budget: budget, share: share, stop: stop}
	g.left.Store(budget)
	return g
}

// reserve takes cost bytes from the budget, or stops the run and returns false when the
// budget cannot cover them: the write is then not issued.
func (g *guard) reserve(cost int64) bool {
	if cost == 0 {
		return true
	}
	if g.left.Add(-cost) >= 0 {
		return true
	}
	g.once.Do(func() {
		g.mu.Lock()
		g.why = fmt.Sprintf("quota guard: stopped before a write that could take a member's database past %.0f%% of its quota (the run's %d-byte budget is used up; WithQuotaShare)", 100*g.share, g.budget)
		g.mu.Unlock()
		g.stop()
	})
	return false
}

func (g *guard) reason() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.why
}
