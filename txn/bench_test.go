package txn_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/txn"
)

// BenchmarkUpdate: one uncontended optimistic read-modify-write (a read and a guarded
// transaction: two etcd round trips).
func BenchmarkUpdate(b *testing.B) {
	cli := etcdtest.Client(b)
	ctx := etcdtest.Context(b, 5*time.Minute)
	key := etcdtest.Prefix(b) + "counter"
	inc := func(old []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(old))
		return []byte(strconv.Itoa(n + 1)), nil
	}
	for b.Loop() {
		if _, err := txn.Update(ctx, cli, key, inc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2, "round-trips/op")
}

// BenchmarkCompareAndSwap: one guarded write (one etcd round trip).
func BenchmarkCompareAndSwap(b *testing.B) {
	cli := etcdtest.Client(b)
	ctx := etcdtest.Context(b, 5*time.Minute)
	key := etcdtest.Prefix(b) + "k"
	rev, err := txn.PutIfAbsent(ctx, cli, key, []byte("0"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rev, err = txn.CompareAndSwap(ctx, cli, key, txn.ModRevisionIs(rev), []byte("v")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1, "round-trips/op")
}
