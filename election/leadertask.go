package election

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// LeaderTask runs a function every interval, only while its candidate leads.
type LeaderTask struct {
	c        *Candidate
	interval time.Duration
	fn       func(ctx context.Context) error
	lg       *zap.Logger
}

// NewLeaderTask returns a task that, once Run, runs fn every interval while c leads.
// fn gets the leader context: it is canceled the moment leadership is lost, and fn must
// return promptly then. Option: WithLogger (fn's errors are logged there).
func NewLeaderTask(c *Candidate, interval time.Duration, fn func(ctx context.Context) error, opts ...Option) (*LeaderTask, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil candidate", ErrInvalidArgument)
	}
	if interval <= 0 {
		return nil, fmt.Errorf("%w: interval %v must be positive", ErrInvalidArgument, interval)
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: nil function", ErrInvalidArgument)
	}
	o, err := buildOptions(forLeaderTask, opts)
	if err != nil {
		return nil, err
	}
	return &LeaderTask{c: c, interval: interval, fn: fn, lg: o.logger}, nil
}

// Run campaigns and, while leader, runs fn at once and then every interval; it never
// starts fn after leadership is lost, and campaigns again until ctx ends. It returns
// ctx's error (or the candidate's, such as ErrSessionLost with a shared session).
func (t *LeaderTask) Run(ctx context.Context) error {
	return t.c.Run(ctx, func(leaderCtx context.Context) error {
		tick := time.NewTicker(t.interval)
		defer tick.Stop()
		for {
			// IsLeader also checks the lease deadline, which may pass a moment before the
			// leader context learns of it.
			if leaderCtx.Err() != nil || !t.c.IsLeader() {
				return leaderCtx.Err()
			}
			if err := t.fn(leaderCtx); err != nil && leaderCtx.Err() == nil {
				t.lg.Warn("leader task failed", zap.String("id", t.c.ID()), zap.Error(err))
			}
			select {
			case <-leaderCtx.Done():
				return leaderCtx.Err()
			case <-tick.C:
			}
		}
	})
}
