package txn_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/txn"
)

// Update is a read-modify-write that never loses a concurrent write.
func ExampleUpdate() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	const key = "/example/txn/counter"
	_, _ = cli.Delete(ctx, key) // start from nothing, however often the example runs

	for range 3 {
		_, err := txn.Update(ctx, cli, key, func(old []byte) ([]byte, error) {
			n := 0
			if old != nil { // nil: the key does not exist yet
				n, _ = strconv.Atoi(string(old))
			}
			return []byte(strconv.Itoa(n + 1)), nil
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	resp, _ := cli.Get(ctx, key)
	fmt.Println("counter:", string(resp.Kvs[0].Value))
	// Output:
	// counter: 3
}

// CompareAndSwap writes only if the key still holds what we last saw; a conflict tells
// what it holds instead.
func ExampleCompareAndSwap() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	const key = "/example/txn/config"

	rev, err := txn.PutIfAbsent(ctx, cli, key, []byte("v1"))
	fmt.Println("created:", err)
	_, err = txn.PutIfAbsent(ctx, cli, key, []byte("v1"))
	fmt.Println("again:", errors.Is(err, txn.ErrConflict))

	_, err = txn.CompareAndSwap(ctx, cli, key, txn.ModRevisionIs(rev), []byte("v2"))
	fmt.Println("swap at our revision:", err)
	_, err = txn.CompareAndSwap(ctx, cli, key, txn.ModRevisionIs(rev), []byte("v3"))
	var ce *txn.ConflictError
	if errors.As(err, &ce) {
		fmt.Printf("stale revision: etcd holds %q\n", ce.Current.Value)
	}
	_, err = txn.DeleteIf(ctx, cli, key, txn.ValueIs([]byte("v2")))
	fmt.Println("deleted:", err)
	// Output:
	// created: <nil>
	// again: true
	// swap at our revision: <nil>
	// stale revision: etcd holds "v2"
	// deleted: <nil>
}

// A Batch writes several keys at once, only if every guard holds.
func ExampleBatch() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	_, _ = cli.Delete(ctx, "/example/txn/running/job1")
	if _, err := cli.Put(ctx, "/example/txn/queue/job1", "pending"); err != nil {
		fmt.Println(err)
		return
	}

	// Move job1 from the queue to the running set, if nobody took it first.
	var b txn.Batch
	b.If("/example/txn/queue/job1", txn.ValueIs([]byte("pending"))).
		If("/example/txn/running/job1", txn.Absent()).
		Delete("/example/txn/queue/job1").
		Put("/example/txn/running/job1", []byte("worker-a"))
	_, err = b.Commit(ctx, cli)
	fmt.Println("took job1:", err)
	_, err = b.Commit(ctx, cli)
	fmt.Println("again:", errors.Is(err, txn.ErrConflict))
	// Output:
	// took job1: <nil>
	// again: true
}

// Atomic runs a function over several keys as one serializable transaction.
func ExampleAtomic() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	_, _ = cli.Put(ctx, "/example/txn/acct/a", "100")
	_, _ = cli.Put(ctx, "/example/txn/acct/b", "0")

	_, err = txn.Atomic(ctx, cli, func(s concurrency.STM) error {
		a, _ := strconv.Atoi(s.Get("/example/txn/acct/a"))
		b, _ := strconv.Atoi(s.Get("/example/txn/acct/b"))
		if a < 30 {
			return errors.New("insufficient funds")
		}
		s.Put("/example/txn/acct/a", strconv.Itoa(a-30))
		s.Put("/example/txn/acct/b", strconv.Itoa(b+30))
		return nil
	}, txn.WithIsolation(concurrency.Serializable))
	fmt.Println("transfer:", err)
	a, _ := cli.Get(ctx, "/example/txn/acct/a")
	b, _ := cli.Get(ctx, "/example/txn/acct/b")
	fmt.Println(string(a.Kvs[0].Value), string(b.Kvs[0].Value))
	// Output:
	// transfer: <nil>
	// 70 30
}
