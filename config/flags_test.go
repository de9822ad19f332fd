package config_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/config"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func newFlags(t *testing.T, ctx context.Context, cli *clientv3.Client, prefix string) *config.Flags {
	t.Helper()
	f, err := config.NewFlags(cli, prefix)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	require.NoError(t, f.WaitReady(ctx))
	return f
}

func waitFlag(t *testing.T, f *config.Flags, name string, ok func(config.Flag) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		fl, err := f.Flag(name)
		return err == nil && ok(fl)
	}, 10*time.Second, 10*time.Millisecond)
}

func TestFlagEvaluation(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	f := newFlags(t, ctx, cli, p)

	require.NoError(t, f.Set(ctx, "dark-mode", config.BoolFlag(true)))
	checkout := config.Flag{
		Variants:       map[string]any{"old": "v1", "new": "v2", "beta": "v3"},
		DefaultVariant: "old",
		Rules: []config.Rule{
			{Attribute: "country", Op: config.OpIn, Values: []string{"NZ", "AU"}, Variant: "beta"},
			{Attribute: "targetingKey", Op: config.OpEquals, Values: []string{"vip"}, Variant: "new"},
			{Attribute: "plan", Op: config.OpEquals, Values: []string{"pro"}, Rollout: []config.Split{{Variant: "new", Percent: 50}, {Variant: "old", Percent: 50}}},
		},
		Rollout: []config.Split{{Variant: "new", Percent: 10}, {Variant: "old", Percent: 90}},
	}
	require.NoError(t, f.Set(ctx, "checkout", checkout))
	waitFlag(t, f, "checkout", func(config.Flag) bool { return true })
	waitFlag(t, f, "dark-mode", func(config.Flag) bool { return true })

	ev, err := f.Evaluate("dark-mode", config.EvalContext{})
	require.NoError(t, err)
	assert.Equal(t, config.Evaluation{Flag: "dark-mode", Variant: "on", Value: true, Reason: config.ReasonStatic}, ev)
	assert.True(t, f.Enabled("dark-mode", config.EvalContext{}))

	ev, err = f.Evaluate("checkout", config.EvalContext{TargetingKey: "u1", Attributes: map[string]any{"country": "NZ"}})
	require.NoError(t, err)
	assert.Equal(t, "v3", ev.Value)
	assert.Equal(t, config.ReasonTargetingMatch, ev.Reason)
	ev, err = f.Evaluate("checkout", config.EvalContext{TargetingKey: "vip"})
	require.NoError(t, err)
	assert.Equal(t, "new", ev.Variant)
	assert.Equal(t, config.ReasonTargetingMatch, ev.Reason)
	ev, err = f.Evaluate("checkout", config.EvalContext{TargetingKey: "someone", Attributes: map[string]any{"country": "FR"}})
	require.NoError(t, err)
	assert.Equal(t, config.ReasonSplit, ev.Reason)
	ev, err = f.Evaluate("checkout", config.EvalContext{})
	require.NoError(t, err)
	assert.Equal(t, config.Evaluation{Flag: "checkout", Variant: "old", Value: "v1", Reason: config.ReasonDefault}, ev, "no targeting key: default")
	s, err := f.String("checkout", config.EvalContext{TargetingKey: "vip"})
	require.NoError(t, err)
	assert.Equal(t, "v2", s)
	_, err = f.Bool("checkout", config.EvalContext{})
	assert.ErrorIs(t, err, config.ErrType)

	// Kill switch.
	require.NoError(t, f.Kill(ctx, "checkout"))
	waitFlag(t, f, "checkout", func(fl config.Flag) bool { return fl.Killed })
	ev, err = f.Evaluate("checkout", config.EvalContext{TargetingKey: "vip"})
	require.NoError(t, err)
	assert.Equal(t, config.Evaluation{Flag: "checkout", Variant: "old", Value: "v1", Reason: config.ReasonDisabled}, ev)
	require.NoError(t, f.Revive(ctx, "checkout"))
	waitFlag(t, f, "checkout", func(fl config.Flag) bool { return !fl.Killed })
	assert.Equal(t, checkout.Rules, mustFlag(t, f, "checkout").Rules, "kill switch keeps the rest")

	// The kill switch of a boolean flag turns it off, whatever its default.
	require.NoError(t, f.Kill(ctx, "dark-mode"))
	waitFlag(t, f, "dark-mode", func(fl config.Flag) bool { return fl.Killed })
	ev, err = f.Evaluate("dark-mode", config.EvalContext{})
	require.NoError(t, err)
	assert.Equal(t, config.Evaluation{Flag: "dark-mode", Variant: "off", Value: false, Reason: config.ReasonDisabled}, ev)
	require.NoError(t, f.Revive(ctx, "dark-mode"))
	waitFlag(t, f, "dark-mode", func(fl config.Flag) bool { return !fl.Killed })

	assert.Equal(t, []string{"checkout", "dark-mode"}, f.Names())

	// Bad input.
	_, err = f.Evaluate("nope", config.EvalContext{})
	assert.ErrorIs(t, err, config.ErrFlagNotFound)
	assert.False(t, f.Enabled("nope", config.EvalContext{}))
	assert.ErrorIs(t, f.Kill(ctx, "nope"), config.ErrFlagNotFound)
	_, err = f.Evaluate("", config.EvalContext{})
	assert.ErrorIs(t, err, config.ErrInvalidKey)
	for name, bad := range map[string]config.Flag{
		"no variants":     {DefaultVariant: "x"},
		"unknown default": {Variants: map[string]any{"a": 1}, DefaultVariant: "b"},
		"rollout sum":     {Variants: map[string]any{"a": 1}, DefaultVariant: "a", Rollout: []config.Split{{Variant: "a", Percent: 60}}},
		"rollout variant": {Variants: map[string]any{"a": 1}, DefaultVariant: "a", Rollout: []config.Split{{Variant: "z", Percent: 100}}},
		"rule op":         {Variants: map[string]any{"a": 1}, DefaultVariant: "a", Rules: []config.Rule{{Attribute: "x", Op: "like", Values: []string{"1"}, Variant: "a"}}},
		"rule variant":    {Variants: map[string]any{"a": 1}, DefaultVariant: "a", Rules: []config.Rule{{Attribute: "x", Op: config.OpEquals, Values: []string{"1"}, Variant: "q"}}},
	} {
		err := f.Set(ctx, "bad", bad)
		assert.ErrorIs(t, err, config.ErrInvalidFlag, name)
		var fe *config.FlagError
		assert.ErrorAs(t, err, &fe, name)
	}
	// A definition another tool wrote that does not parse: that flag errors, others work.
	_, err = cli.Put(ctx, p+"garbage", "{nope")
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"half", `{"variants":{"a":1},"defaultVariant":"b"}`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := f.Evaluate("half", config.EvalContext{})
		return errors.Is(err, config.ErrInvalidFlag)
	}, 10*time.Second, 10*time.Millisecond)
	_, err = f.Evaluate("garbage", config.EvalContext{})
	assert.ErrorIs(t, err, config.ErrInvalidFlag)
	assert.True(t, f.Enabled("dark-mode", config.EvalContext{}))
}

func mustFlag(t *testing.T, f *config.Flags, name string) config.Flag {
	fl, err := f.Flag(name)
	require.NoError(t, err)
	return fl
}

func TestFlagChangeEvents(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	f := newFlags(t, ctx, cli, p)
	var mu sync.Mutex
	var got []config.FlagChange
	cancel, err := f.Watch(func(c config.FlagChange) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	})
	require.NoError(t, err)
	defer cancel()
	require.NoError(t, f.Set(ctx, "x", config.BoolFlag(false)))
	require.NoError(t, f.Kill(ctx, "x"))
	require.NoError(t, f.Delete(ctx, "x"))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 }, 10*time.Second, 10*time.Millisecond)
	assert.Nil(t, got[0].Old)
	assert.Equal(t, "off", got[0].New.DefaultVariant)
	assert.False(t, got[1].Old.Killed)
	assert.True(t, got[1].New.Killed)
	assert.Nil(t, got[2].New)
	for _, c := range got {
		assert.Equal(t, "x", c.Name)
		assert.NoError(t, c.Err)
	}
}

const rolloutChildEnv = "CONFIG_ROLLOUT_CHILD"

// rolloutVariants evaluates a 30% rollout for 10k keys and returns the variant string.
func rolloutVariants(t *testing.T) string {
	ctx := etcdtest.Context(t, 20*time.Second)
	f := newFlags(t, ctx, etcdtest.Client(t), etcdtest.Prefix(t))
	require.NoError(t, f.Set(ctx, "new-checkout", config.RolloutFlag(30)))
	waitFlag(t, f, "new-checkout", func(config.Flag) bool { return true })
	var b strings.Builder
	for k := range 10000 {
		if f.Enabled("new-checkout", config.EvalContext{TargetingKey: fmt.Sprint("user-", k)}) {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}

// TestRolloutChild runs only as the child process of TestRolloutStableAcrossProcesses.
func TestRolloutChild(t *testing.T) {
	if os.Getenv(rolloutChildEnv) == "" {
		t.Skip("child of TestRolloutStableAcrossProcesses")
	}
	fmt.Println("VARIANTS", rolloutVariants(t))
}

// Guarantee 8: a rollout is stable for the same key across processes and within ±3% of
// its percentage over 10k keys.
func TestRolloutStableAcrossProcesses(t *testing.T) {
	mine := rolloutVariants(t)
	on := strings.Count(mine, "1")
	t.Logf("30%% rollout: %d of 10000 on", on)
	assert.InDelta(t, 3000, on, 300)
	assert.Equal(t, mine, rolloutVariants(t), "same process, new Flags")

	cmd := exec.Command(os.Args[0], "-test.run=^TestRolloutChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), rolloutChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var theirs string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "VARIANTS "); ok {
			theirs = v
		}
	}
	require.Len(t, theirs, 10000, "%s", out)
	assert.Equal(t, mine, theirs, "another process assigns every key the same variant")

	// Independent flags get independent buckets; the percentages hold for several.
	for _, pct := range []float64{1, 10, 50, 90} {
		n := 0
		for k := range 10000 {
			if float64(config.Bucket(fmt.Sprint("flag-", pct), fmt.Sprint("user-", k)))/100 < pct {
				n++
			}
		}
		assert.InDelta(t, pct*100, n, 300, "%v%%", pct)
	}
}
