package config_test

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/config"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func Example() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, _ = cli.Delete(ctx, "/example/app/config/", clientv3.WithPrefix()) // however often the example runs
	cfg, err := config.New(cli, "/example/app/config")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cfg.Close()
	if err := cfg.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}

	changed := make(chan config.Change, 1)
	stop, _ := cfg.Watch("pool", func(c config.Change) { changed <- c })
	defer stop()

	next := func() config.Change {
		select {
		case c := <-changed:
			return c
		case <-ctx.Done():
			return config.Change{Key: ctx.Err().Error()}
		}
	}
	_ = cfg.Set(ctx, "pool/size", 10)
	c := next()
	size, _ := cfg.Int("pool/size")
	fmt.Printf("%s: %s -> %s, Int = %d\n", c.Key, c.Old, c.New, size)

	_ = cfg.Set(ctx, "pool/size", 20)
	c = next()
	fmt.Printf("%s: %s -> %s\n", c.Key, c.Old, c.New)

	_, err = cfg.Bool("pool/size")
	fmt.Println(err)
	// Output:
	// pool/size:  -> 10, Int = 10
	// pool/size: 10 -> 20
	// config: key "pool/size": want bool, got number 20
}

func ExampleStore_Restore() {
	cli, _ := etcdtest.NewClient()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = cli.Delete(ctx, "/example/restore/config", clientv3.WithPrefix()) // and its snapshots
	cfg, _ := config.New(cli, "/example/restore/config")
	defer cfg.Close()

	_ = cfg.Set(ctx, "feature/limit", 100)
	snap, _ := cfg.Snapshot(ctx)
	_ = cfg.Set(ctx, "feature/limit", 5) // a bad change
	_ = cfg.Restore(ctx, snap.Version)   // roll back, atomically

	resp, _ := cli.Get(ctx, "/example/restore/config/feature/limit")
	fmt.Printf("version %d, limit %s\n", snap.Version, resp.Kvs[0].Value)
	// Output: version 1, limit 100
}

func ExampleFlags() {
	cli, _ := etcdtest.NewClient()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = cli.Delete(ctx, "/example/flags/", clientv3.WithPrefix())
	flags, _ := config.NewFlags(cli, "/example/flags")
	defer flags.Close()
	_ = flags.WaitReady(ctx)

	changed := make(chan struct{}, 1)
	stop, _ := flags.Watch(func(config.FlagChange) { changed <- struct{}{} })
	defer stop()

	f := config.RolloutFlag(25)
	f.Rules = []config.Rule{{Attribute: "plan", Op: config.OpIn, Values: []string{"beta"}, Variant: "on"}}
	_ = flags.Set(ctx, "new-search", f)
	select {
	case <-changed:
	case <-ctx.Done():
		fmt.Println(ctx.Err())
		return
	}

	on := 0
	for i := range 1000 {
		if flags.Enabled("new-search", config.EvalContext{TargetingKey: fmt.Sprint("user-", i)}) {
			on++
		}
	}
	ev, _ := flags.Evaluate("new-search", config.EvalContext{TargetingKey: "u1", Attributes: map[string]any{"plan": "beta"}})
	fmt.Printf("about a quarter on: %v; beta user: %v (%s)\n", on > 200 && on < 300, ev.Value, ev.Reason)
	// Output: about a quarter on: true; beta user: true (TARGETING_MATCH)
}
