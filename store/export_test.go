package store

import "time"

// SetSweepEvery sets how often a history write holds every cluster to the retention;
// call it before the first write.
func SetSweepEvery(b *Bolt, d time.Duration) { b.sweepEvery = d }
