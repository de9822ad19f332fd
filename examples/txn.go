package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/etcd-monitor/etcd-monitor/txn"
)

func init() {
	register("txn", "compare-and-swap and an optimistic counter shared by 4 writers", runTxn)
}

func runTxn(ctx context.Context, e *env) error {
	prefix := "/examples/txn/" + e.nodeID + "/"
	key := prefix + "counter"
	if _, err := e.cli.Delete(ctx, key); err != nil {
		return err
	}

	// Four writers, each with a client of its own, increment one counter 25 times.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		cli, err := e.newClient()
		if err != nil {
			return err
		}
		defer cli.Close()
		wg.Go(func() {
			for range 25 {
				_, err := txn.Update(ctx, cli, key, func(old []byte) ([]byte, error) {
					n := 0
					if old != nil {
						var err error
						if n, err = strconv.Atoi(string(old)); err != nil {
							return nil, err
						}
					}
					return []byte(strconv.Itoa(n + 1)), nil
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	resp, err := e.cli.Get(ctx, key)
	if err != nil {
		return err
	}
	e.printf("4 writers x 25 increments: counter = %s (no update lost)", resp.Kvs[0].Value)

	// Compare-and-swap by revision: the second writer with the same stale view loses.
	rev := resp.Kvs[0].ModRevision
	if _, err := txn.CompareAndSwap(ctx, e.cli, key, txn.ModRevisionIs(rev), []byte("reset")); err != nil {
		return err
	}
	e.printf("swap at revision %d: ok", rev)
	_, err = txn.CompareAndSwap(ctx, e.cli, key, txn.ModRevisionIs(rev), []byte("again"))
	var ce *txn.ConflictError
	if !errors.As(err, &ce) {
		return fmt.Errorf("expected a conflict, got %v", err)
	}
	e.printf("swap at the same revision again: conflict, etcd holds %q", ce.Current.Value)
	_, err = e.cli.Delete(ctx, key)
	return err
}
