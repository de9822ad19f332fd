package lock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

func ExampleMutex() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	a, _ := lock.New(cli, "/example/mutex/report", lock.WithTTL(5*time.Second))
	defer a.Close()
	b, _ := lock.New(cli, "/example/mutex/report", lock.WithTTL(5*time.Second))
	defer b.Close()

	if err := a.Lock(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("a holds the lock")
	err = b.TryLock(ctx)
	fmt.Println("b:", errors.Is(err, lock.ErrLocked))

	// A write applied only while a still holds the lock.
	if _, err := a.Do(ctx, clientv3.OpPut("/example/mutex/owner", "a")); err != nil {
		fmt.Println(err)
		return
	}
	tokenA := a.Token()
	if err := a.Unlock(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if err := b.Lock(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("b holds the lock; its token is higher:", b.Token() > tokenA)
	_, err = a.Do(ctx, clientv3.OpPut("/example/mutex/owner", "a"))
	fmt.Println("a's write is refused:", errors.Is(err, lock.ErrNotHeld))
	_ = b.Unlock(ctx)
	// Output:
	// a holds the lock
	// b: true
	// b holds the lock; its token is higher: true
	// a's write is refused: true
}

func ExampleSemaphore() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	sem, _ := lock.NewSemaphore(cli, "/example/semaphore/workers", 2)
	defer sem.Close()
	p1, _ := sem.Acquire(ctx)
	p2, _ := sem.Acquire(ctx)
	_, err = sem.TryAcquire(ctx)
	fmt.Println("third permit:", errors.Is(err, lock.ErrLocked))
	_ = p1.Release(ctx)
	p3, err := sem.TryAcquire(ctx)
	fmt.Println("after a release:", err)
	_ = p2.Release(ctx)
	_ = p3.Release(ctx)
	// Output:
	// third permit: true
	// after a release: <nil>
}

func ExampleManager_LockAll() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	m, _ := lock.NewManager(cli, "/example/manager/accounts")
	defer m.Close()
	// Taken in sorted order whatever the order given: no deadlock with another caller.
	held, err := m.LockAll(ctx, "carol", "alice")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, mu := range held {
		fmt.Println("holding", mu.Token() > 0)
	}
	fmt.Println(m.UnlockAll(ctx, held))
	// Output:
	// holding true
	// holding true
	// <nil>
}
