package metrics

import (
	"bufio"
	"runtime"
	"strings"
	"testing"
)

// A scrape's read buffer outlives garbage collections: the next scrape reuses it rather
// than allocating one, and a buffer in excess of what is kept is let go.
func TestScrapeBufferKeptAcrossCollections(t *testing.T) {
	for len(readers) > 0 { // only this test's buffers from here
		<-readers
	}
	if _, err := parse(strings.NewReader("etcd_server_has_leader 1\n"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if len(readers) != 1 {
		t.Fatalf("%d buffers kept after a scrape, want 1", len(readers))
	}
	kept := <-readers
	readers <- kept
	runtime.GC()
	runtime.GC()
	got := getReader(nil)
	if got != kept {
		t.Fatal("the scrape after two collections got a new buffer")
	}
	many := []*bufio.Reader{got}
	for range cap(readers) + 2 {
		many = append(many, getReader(nil))
	}
	for _, br := range many {
		putReader(br)
	}
	if len(readers) != cap(readers) {
		t.Fatalf("%d buffers kept of %d returned, want %d", len(readers), len(many), cap(readers))
	}
}
