package health

import (
	"sync"
	"time"
)

// checkBounds are the upper bounds of CheckStats' buckets. A check costs a membership
// read and one status request per member in parallel, each bounded by the timeout
// (default 2s): milliseconds when all is well, the timeout when a member is down.
var checkBounds = []time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// CheckStats are cumulative statistics of a Checker's checks since it was made: a
// histogram of their durations, ready to export (the monitor exports it as
// etcd_monitor_health_check_duration_seconds) without this package depending on a
// metrics library.
type CheckStats struct {
	// Count is how many checks ran, Errors how many of them failed outright (the
	// membership could not be read).
	Count, Errors uint64
	// Sum is the checks' total duration.
	Sum time.Duration
	// Buckets are cumulative: Buckets[i].Count checks took at most Buckets[i].UpperBound.
	// Checks slower than the last bound count only in Count.
	Buckets []StatsBucket
}

// StatsBucket is one cumulative bucket of CheckStats.
type StatsBucket struct {
	UpperBound time.Duration
	Count      uint64
}

type stats struct {
	mu            sync.Mutex
	count, errors uint64
	sum           time.Duration
	buckets       []uint64 // cumulative, one per checkBounds
}

func (s *stats) observe(d time.Duration, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = make([]uint64, len(checkBounds))
	}
	s.count++
	if failed {
		s.errors++
	}
	s.sum += d
	for i, b := range checkBounds {
		if d <= b {
			s.buckets[i]++
		}
	}
}

// Stats returns the statistics of the checks so far.
func (c *Checker) Stats() CheckStats {
	s := &c.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	out := CheckStats{Count: s.count, Errors: s.errors, Sum: s.sum, Buckets: make([]StatsBucket, len(checkBounds))}
	for i, b := range checkBounds {
		out.Buckets[i].UpperBound = b
		if s.buckets != nil {
			out.Buckets[i].Count = s.buckets[i]
		}
	}
	return out
}
