package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// Open the daemon's state file, keep a benchmark result, and read it back after a
// restart.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "etcd-monitor")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "etcd-monitor.db")
	ctx := context.Background()

	st, err := store.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = st.PutBenchmark(ctx, store.Benchmark{ID: "run-1", Time: time.Now(), Cluster: "prod", Data: []byte(`{"throughput":1234}`)})
	fmt.Println("stored:", err == nil)
	st.Close()

	st, err = store.Open(path) // after a restart
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	bs, err := st.Benchmarks(ctx, store.BenchmarkQuery{Cluster: "prod"})
	fmt.Println(len(bs), bs[0].ID, string(bs[0].Data), err)
	// Output:
	// stored: true
	// 1 run-1 {"throughput":1234} <nil>
}

// A file that is not a state file is an error naming it; it is never reset.
func ExampleOpen_corrupt() {
	dir, _ := os.MkdirTemp("", "etcd-monitor")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "etcd-monitor.db")
	_ = os.WriteFile(path, []byte("this is not a database, and it is long enough to look like one page"), 0o600)
	_, err := store.Open(path)
	fmt.Println(err != nil, errorsIs(err))
	// Output:
	// true true
}

func errorsIs(err error) bool { return errors.Is(err, store.ErrCorrupt) }
