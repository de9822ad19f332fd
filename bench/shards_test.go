package bench

import "testing"

// The recorders of a run do not grow with its workers.
func TestRecorderMemoryIsBoundedWhateverTheWorkers(t *testing.T) {
	s := newShards(MaxWorkers)
	if len(s.s) > maxShards() {
		t.Fatalf("%d shards for %d workers, want at most %d", len(s.s), MaxWorkers, maxShards())
	}
	bytes := 0
	for _, sh := range s.s {
		bytes += sh.reads.hist.ByteSize() + sh.writes.hist.ByteSize()
	}
	if limit := 64 << 20; bytes > limit {
		t.Fatalf("recorders of %d workers hold %d bytes, want at most %d", MaxWorkers, bytes, limit)
	}
	t.Logf("%d workers, %d shards, %d bytes of histograms", MaxWorkers, len(s.s), bytes)
	if one := newShards(1); len(one.s) != 1 {
		t.Fatalf("one worker, %d shards", len(one.s))
	}
}
