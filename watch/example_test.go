package watch_test

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/watch"
)

// A Watcher delivers each change once, in order. WithInitialState starts with the
// current state as a Resync, so list and watch need no glue.
func ExampleNewWatcher() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	const prefix = "/example/watch/jobs/"
	_, _ = cli.Delete(ctx, prefix, clientv3.WithPrefix()) // however often the example runs
	_, _ = cli.Put(ctx, prefix+"1", "queued")

	w, err := watch.NewWatcher(cli, prefix, watch.WithPrefix(), watch.WithInitialState())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()

	ev := <-w.Events()
	fmt.Println(ev.Type, len(ev.State), "key(s)")
	_, _ = cli.Put(ctx, prefix+"2", "queued")
	_, _ = cli.Delete(ctx, prefix+"1")
	for range 2 {
		ev := <-w.Events()
		fmt.Println(ev.Type, ev.KV.Key)
	}
	// Output:
	// RESYNC 1 key(s)
	// PUT /example/watch/jobs/2
	// DELETE /example/watch/jobs/1
}

// A Cache answers reads from memory and tells subscribers what changed.
func ExampleNewCache() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const prefix = "/example/watch/config/"
	_, _ = cli.Put(ctx, prefix+"db/host", "10.0.0.1")
	_, _ = cli.Put(ctx, prefix+"db/port", "5432")

	c, err := watch.NewCache(cli, prefix)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if err := c.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, kv := range c.List(prefix + "db/") {
		fmt.Printf("%s = %s\n", kv.Key, kv.Value)
	}

	changed := make(chan watch.Change, 1)
	stop := c.Subscribe(func(ch watch.Change) { changed <- ch })
	defer stop()
	_, _ = cli.Put(ctx, prefix+"db/host", "10.0.0.2")
	ch := <-changed
	fmt.Printf("%s: %s -> %s\n", ch.Key, ch.Old.Value, ch.New.Value)
	kv, _ := c.Get(prefix + "db/host")
	fmt.Println("get:", string(kv.Value), "stale:", c.Stale())
	// Output:
	// /example/watch/config/db/host = 10.0.0.1
	// /example/watch/config/db/port = 5432
	// /example/watch/config/db/host: 10.0.0.1 -> 10.0.0.2
	// get: 10.0.0.2 stale: false
}
