package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/lock"
)

func init() {
	register("lock", "a mutex with fencing tokens: two holders in turn, a lost lock refuses writes", runLock)
}

func runLock(ctx context.Context, e *env) error {
	const key = "/examples/lock/report"
	other, err := e.newClient()
	if err != nil {
		return err
	}
	defer other.Close()

	a, err := lock.New(e.cli, key, lock.WithTTL(5*time.Second))
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := lock.New(other, key, lock.WithTTL(5*time.Second))
	if err != nil {
		return err
	}
	defer b.Close()

	if err := a.Lock(ctx); err != nil {
		return err
	}
	e.printf("%s-a holds %s with token %d", e.nodeID, key, a.Token())
	if err := b.TryLock(ctx); errors.Is(err, lock.ErrLocked) {
		e.printf("%s-b: %v", e.nodeID, err)
	}
	bGot := make(chan error, 1)
	go func() { bGot <- b.Lock(ctx) }()

	// Writes through Do are applied only while the lock is still ours.
	if _, err := a.Do(ctx, clientv3.OpPut("/examples/lock/owner", e.nodeID+"-a")); err != nil {
		return err
	}
	e.printf("%s-a wrote under the lock; unlocking", e.nodeID)
	if err := a.Unlock(ctx); err != nil {
		return err
	}
	select {
	case err := <-bGot:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	e.printf("%s-b holds it now with token %d (higher: a stale holder can be fenced off)", e.nodeID, b.Token())

	// Someone revokes b's lease: b learns it on Done, and its writes are refused.
	done := b.Done()
	r, err := e.cli.Get(ctx, b.Key())
	if err != nil {
		return err
	}
	if len(r.Kvs) == 0 {
		return errors.New("lock key missing")
	}
	if _, err := e.cli.Revoke(ctx, clientv3.LeaseID(r.Kvs[0].Lease)); err != nil {
		return err
	}
	select {
	case <-done:
		e.printf("%s-b: lock lost: %v", e.nodeID, b.Err())
	case <-time.After(5 * time.Second):
		return errors.New("loss not noticed")
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := b.Do(ctx, clientv3.OpPut("/examples/lock/owner", e.nodeID+"-b")); err != nil {
		e.printf("%s-b: write refused: %v", e.nodeID, err)
	} else {
		return fmt.Errorf("a write after the loss went through")
	}
	return nil
}
