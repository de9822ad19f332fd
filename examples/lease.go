package main

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/lease"
)

func init() {
	register("lease", "a key kept alive by a lease; revoked from outside, re-granted and re-attached", runLease)
}

func runLease(ctx context.Context, e *env) error {
	key := "/examples/lease/" + e.nodeID
	attached := make(chan clientv3.LeaseID, 1)
	// A TTL of a few seconds: a keep-alive a loaded machine delays by a second or two
	// still arrives in time.
	const ttl = 5 * time.Second
	k, err := lease.New(ctx, e.cli, ttl, lease.WithRegrant(func(ctx context.Context, id clientv3.LeaseID) error {
		if _, err := e.cli.Put(ctx, key, "alive", clientv3.WithLease(id)); err != nil {
			return err
		}
		attached <- id
		return nil
	}))
	if err != nil {
		return err
	}
	defer k.Close()
	first, lost := k.ID(), k.Lost()
	if _, err := e.cli.Put(ctx, key, "alive", clientv3.WithLease(first)); err != nil {
		return err
	}
	e.printf("granted lease %x (TTL %v) and attached %s", int64(first), ttl, key)

	// Outlive the TTL: the Keeper renews it.
	select {
	case <-lost:
		return fmt.Errorf("lease lost: %w", k.Err())
	case <-time.After(ttl + time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	left, err := k.TTL(ctx)
	if err != nil {
		return err
	}
	e.printf("%v later the lease is still alive (%v left)", ttl+time.Second, left)

	// Another process revokes it: the Keeper notices, re-grants and the hook re-attaches.
	if _, err := e.cli.Revoke(ctx, first); err != nil {
		return err
	}
	e.printf("revoked lease %x from outside", int64(first))
	select {
	case <-lost:
		e.printf("keeper: lease lost")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case id := <-attached:
		e.printf("keeper: re-granted lease %x and re-attached %s", int64(id), key)
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := k.Close(); err != nil {
		return err
	}
	resp, err := e.cli.Get(ctx, key)
	if err != nil {
		return err
	}
	e.printf("closed the keeper: lease revoked, %d key(s) left", len(resp.Kvs))
	return nil
}
