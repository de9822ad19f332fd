package openfeature_test

import (
	"context"
	"fmt"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"

	"github.com/etcd-monitor/etcd-monitor/config"
	cfgof "github.com/etcd-monitor/etcd-monitor/config/openfeature"
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

	flags, err := config.NewFlags(cli, "/example/openfeature/flags")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer flags.Close()
	changed := make(chan struct{}, 1)
	stop, _ := flags.Watch(func(config.FlagChange) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer stop()
	_ = flags.Set(ctx, "new-checkout", config.BoolFlag(true))
	// Wait, at most until ctx ends, for the flag written above to be in memory.
	for {
		if _, err := flags.Flag("new-checkout"); err == nil {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			fmt.Println("flag not loaded:", ctx.Err())
			return
		}
	}

	_ = of.SetNamedProviderAndWait("example", cfgof.New(flags))
	defer of.Shutdown()
	client := of.NewClient("example")
	d, _ := client.BooleanValueDetails(ctx, "new-checkout", false, of.NewEvaluationContext("user-42", nil))
	fmt.Println(d.Value, d.Variant, d.Reason)
	// Output: true on STATIC
}
