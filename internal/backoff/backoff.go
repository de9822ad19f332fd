// Package backoff computes jittered exponential delays for retry loops.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields delays that double from Min up to Max, each with full jitter in
// [d/2, d]. The zero value is not useful; use New. A Backoff is not safe for
// concurrent use: each retry loop owns one.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// New returns a Backoff from min to max. Non-positive min defaults to 50ms; max below
// min is raised to min.
func New(min, max time.Duration) *Backoff {
	if min <= 0 {
		min = 50 * time.Millisecond
	}
	if max < min {
		max = min
	}
	return &Backoff{Min: min, Max: max}
}

// Next returns the next delay and advances the sequence.
func (b *Backoff) Next() time.Duration {
	d := b.Min
	for i := 0; i < b.attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	b.attempt++
	half := d / 2
	return half + rand.N(half+1)
}

// Reset starts the sequence again from Min, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for the next delay or until ctx ends; it reports whether the full delay
// elapsed.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
