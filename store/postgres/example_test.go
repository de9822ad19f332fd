package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// Open the store, keep history, and read it back downsampled. (Not run by go test: it
// needs a PostgreSQL; the package's tests run the same calls against one.)
func ExampleOpen() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, os.Getenv("ETCD_MONITOR_POSTGRES_DSN"), postgres.WithSchema("etcd_monitor"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	now := time.Now()
	if err := st.PutMetricSnapshots(ctx, []store.MetricSnapshot{
		{Time: now, Cluster: "prod", Values: map[string]float64{"latency_p99_seconds": 0.004}},
	}); err != nil {
		fmt.Println(err)
		return
	}
	_ = st.Flush(ctx) // history is written in the background; wait for it here
	hist, err := st.MetricSnapshots(ctx, store.HistoryQuery{Cluster: "prod", Since: now.Add(-24 * time.Hour), Step: 5 * time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range hist {
		fmt.Println(h.Time.Format(time.RFC3339), h.Values["latency_p99_seconds"], h.Max["latency_p99_seconds"], h.Samples)
	}
}

// Two daemons on one store: the one holding the lease notifies, with writes fenced by
// its term. (Not run by go test: it needs a PostgreSQL.)
func ExampleLease() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, os.Getenv("ETCD_MONITOR_POSTGRES_DSN"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	lease, err := st.NewLease("alerting", "replica-a", 30*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	if held, err := lease.Acquire(ctx); err != nil || !held {
		fmt.Println("standby", err)
		return
	}
	defer lease.Release(ctx)
	fenced, err := lease.Fenced()
	if err != nil {
		fmt.Println(err)
		return
	}
	// Refused with postgres.ErrFenced once another replica took the lease over.
	_, err = fenced.AppendNotification(ctx, store.Notification{Time: time.Now(), Receiver: "pager", Status: "sent"})
	fmt.Println(err)
}

// A DSN that cannot be used is an invalid argument, and the error never shows its
// password.
func ExampleOpen_badDSN() {
	_, err := postgres.Open(context.Background(), "postgres://monitor:s3cret@db.example:5432/etcd?sslmode=bogus")
	fmt.Println(errors.Is(err, postgres.ErrInvalidArgument), strings.Contains(err.Error(), "s3cret"))
	// Output: true false
}
