package main

import (
	"context"
	"fmt"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"

	"github.com/etcd-monitor/etcd-monitor/config"
	cfgof "github.com/etcd-monitor/etcd-monitor/config/openfeature"
)

func init() {
	register("flags", "feature flags: sticky percentage rollout, targeting rules, kill switch, OpenFeature", runFlags)
}

func runFlags(ctx context.Context, e *env) error {
	prefix := "/examples/flags/" + e.nodeID
	flags, err := config.NewFlags(e.cli, prefix)
	if err != nil {
		return err
	}
	defer flags.Close()
	if err := flags.WaitReady(ctx); err != nil {
		return err
	}
	changes := make(chan config.FlagChange, 8)
	stop, err := flags.Watch(func(c config.FlagChange) { changes <- c })
	if err != nil {
		return err
	}
	defer stop()
	waitChange := func() error {
		select {
		case c := <-changes:
			killed := c.New != nil && c.New.Killed
			e.printf("change event: flag %q (killed=%v)", c.Name, killed)
			return nil
		case <-time.After(3 * time.Second):
			return fmt.Errorf("no change event within 3s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	f := config.RolloutFlag(20)
	f.Rules = []config.Rule{{Attribute: "plan", Op: config.OpIn, Values: []string{"beta", "internal"}, Variant: "on"}}
	if err := flags.Set(ctx, "new-checkout", f); err != nil {
		return err
	}
	if err := waitChange(); err != nil {
		return err
	}

	on := 0
	for i := range 10000 {
		if flags.Enabled("new-checkout", config.EvalContext{TargetingKey: fmt.Sprint("user-", i)}) {
			on++
		}
	}
	e.printf("20%% rollout: %d of 10000 users on (bucket of user-42 is %d/10000, the same in every process)", on, config.Bucket("new-checkout", "user-42"))
	ev, err := flags.Evaluate("new-checkout", config.EvalContext{TargetingKey: "user-7", Attributes: map[string]any{"plan": "beta"}})
	if err != nil {
		return err
	}
	e.printf("beta user-7: %v (%s)", ev.Value, ev.Reason)

	// Through OpenFeature.
	provider := cfgof.New(flags)
	if err := of.SetNamedProviderAndWait("examples-flags", provider); err != nil {
		return err
	}
	defer of.Shutdown()
	client := of.NewClient("examples-flags")
	d, err := client.BooleanValueDetails(ctx, "new-checkout", false, of.NewEvaluationContext("user-7", map[string]any{"plan": "internal"}))
	if err != nil {
		return err
	}
	e.printf("OpenFeature: new-checkout for internal user-7 = %v (variant %s, reason %s)", d.Value, d.Variant, d.Reason)

	// Kill switch: everyone off at once.
	if err := flags.Kill(ctx, "new-checkout"); err != nil {
		return err
	}
	if err := waitChange(); err != nil {
		return err
	}
	d, err = client.BooleanValueDetails(ctx, "new-checkout", true, of.NewEvaluationContext("user-7", map[string]any{"plan": "beta"}))
	if err != nil {
		return err
	}
	e.printf("OpenFeature after the kill switch: %v (reason %s)", d.Value, d.Reason)

	_, err = flags.Evaluate("no-such-flag", config.EvalContext{})
	e.printf("unknown flag: %v", err)
	return nil
}
