package main

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/watch"
)

func init() {
	register("watch", "a watcher that survives compaction, and an in-memory cache of a prefix", runWatch)
}

func runWatch(ctx context.Context, e *env) error {
	prefix := "/examples/watch/" + e.nodeID + "/"
	if _, err := e.cli.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
		return err
	}
	if _, err := e.cli.Put(ctx, prefix+"a", "1"); err != nil {
		return err
	}

	// A cache of the prefix: reads from memory, subscribers told of every change.
	cache, err := watch.NewCache(e.cli, prefix)
	if err != nil {
		return err
	}
	defer cache.Close()
	if err := cache.WaitReady(ctx); err != nil {
		return err
	}
	changes := make(chan watch.Change, 16)
	defer cache.Subscribe(func(ch watch.Change) { changes <- ch })()
	e.printf("cache ready at revision %d with %d key(s)", cache.Revision(), cache.Len())

	// A watcher that starts from an old revision which is then compacted away: instead of
	// silently missing what was compacted, it re-lists and says so.
	resp, err := e.cli.Put(ctx, prefix+"b", "2")
	if err != nil {
		return err
	}
	from := resp.Header.Revision
	put, err := e.cli.Put(ctx, prefix+"c", "3")
	if err != nil {
		return err
	}
	start := watch.WithStartRevision(from)
	if e.embedded {
		if _, err := e.cli.Compact(ctx, put.Header.Revision); err != nil {
			return err
		}
		e.printf("wrote b and c, compacted history up to revision %d", put.Header.Revision)
	} else {
		// Not our etcd: leave its history alone and ask for the state up front instead.
		start = watch.WithInitialState()
		e.printf("wrote b and c (history not compacted: not an embedded etcd)")
	}
	w, err := watch.NewWatcher(e.cli, prefix, watch.WithPrefix(), start)
	if err != nil {
		return err
	}
	defer w.Close()
	for got := 0; got < 2; got++ {
		select {
		case ev := <-w.Events():
			switch ev.Type {
			case watch.Resync:
				e.printf("watcher: %v at revision %d: %d key(s) now", ev.Type, ev.Revision, len(ev.State))
				if _, err := e.cli.Delete(ctx, prefix+"a"); err != nil {
					return err
				}
			default:
				e.printf("watcher: %v %s", ev.Type, ev.KV.Key)
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("watcher: no event")
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// The cache saw the same changes.
	for got := 0; got < 3; got++ {
		select {
		case ch := <-changes:
			switch {
			case ch.Old == nil:
				e.printf("cache: added %s = %s", ch.Key, ch.New.Value)
			case ch.New == nil:
				e.printf("cache: removed %s", ch.Key)
			default:
				e.printf("cache: %s %s -> %s", ch.Key, ch.Old.Value, ch.New.Value)
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("cache: no change")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var keys []string
	for _, kv := range cache.List(prefix) {
		keys = append(keys, kv.Key[len(prefix):]+"="+string(kv.Value))
	}
	e.printf("cache now: %v (stale: %v)", keys, cache.Stale())
	_, err = e.cli.Delete(ctx, prefix, clientv3.WithPrefix())
	return err
}
