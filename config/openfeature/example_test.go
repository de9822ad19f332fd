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

	flags, _ := config.NewFlags(cli, "/example/openfeature/flags")
	defer flags.Close()
	_ = flags.Set(ctx, "new-checkout", config.BoolFlag(true))

	_ = of.SetNamedProviderAndWait("example", cfgof.New(flags))
	defer of.Shutdown()
	client := of.NewClient("example")
	for {
		// Wait until the flag written above is in the provider's memory.
		if _, err := flags.Flag("new-checkout"); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	d, _ := client.BooleanValueDetails(ctx, "new-checkout", false, of.NewEvaluationContext("user-42", nil))
	fmt.Println(d.Value, d.Variant, d.Reason)
	// Output: true on STATIC
}
