package openfeature_test

import (
	"testing"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/config"
	cfgof "github.com/etcd-monitor/etcd-monitor/config/openfeature"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestProvider(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	flags, err := config.NewFlags(cli, p)
	require.NoError(t, err)
	defer flags.Close()
	require.NoError(t, flags.Set(ctx, "beta", config.BoolFlag(true)))
	require.NoError(t, flags.Set(ctx, "color", config.Flag{
		Variants:       map[string]any{"red": "#f00", "blue": "#00f"},
		DefaultVariant: "red",
		Rules:          []config.Rule{{Attribute: "country", Op: config.OpEquals, Values: []string{"NZ"}, Variant: "blue"}},
	}))
	require.NoError(t, flags.Set(ctx, "limit", config.Flag{Variants: map[string]any{"low": 10, "high": 1000.5}, DefaultVariant: "low"}))
	require.NoError(t, flags.Set(ctx, "theme", config.Flag{Variants: map[string]any{"dark": map[string]any{"bg": "black"}}, DefaultVariant: "dark"}))

	provider := cfgof.New(flags)
	require.NoError(t, of.SetNamedProviderAndWait("cfg-test", provider))
	defer of.Shutdown()
	client := of.NewClient("cfg-test")

	require.Eventually(t, func() bool { _, err := flags.Flag("theme"); return err == nil }, 10*time.Second, 10*time.Millisecond)
	changed := make(chan of.EventDetails, 16)
	cb := func(d of.EventDetails) { changed <- d }
	client.AddHandler(of.ProviderConfigChange, &cb)

	b, err := client.BooleanValueDetails(ctx, "beta", false, of.EvaluationContext{})
	require.NoError(t, err)
	assert.True(t, b.Value)
	assert.Equal(t, of.StaticReason, b.Reason)
	assert.Equal(t, "on", b.Variant)

	s, err := client.StringValueDetails(ctx, "color", "none", of.NewEvaluationContext("u1", map[string]any{"country": "NZ"}))
	require.NoError(t, err)
	assert.Equal(t, "#00f", s.Value)
	assert.Equal(t, of.TargetingMatchReason, s.Reason)

	n, err := client.IntValue(ctx, "limit", 0, of.EvaluationContext{})
	require.NoError(t, err)
	assert.EqualValues(t, 10, n)
	fl, err := client.FloatValue(ctx, "limit", 0, of.EvaluationContext{})
	require.NoError(t, err)
	assert.Equal(t, 10.0, fl)
	obj, err := client.ObjectValue(ctx, "color", nil, of.EvaluationContext{})
	require.NoError(t, err)
	assert.Equal(t, "#f00", obj)
	// An object variant is the caller's copy.
	theme, err := client.ObjectValue(ctx, "theme", nil, of.EvaluationContext{})
	require.NoError(t, err)
	theme.(map[string]any)["bg"] = "pink"
	theme, err = client.ObjectValue(ctx, "theme", nil, of.EvaluationContext{})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"bg": "black"}, theme)

	// Errors give the caller's default and a code.
	d, err := client.BooleanValueDetails(ctx, "missing", true, of.EvaluationContext{})
	require.Error(t, err)
	assert.True(t, d.Value)
	assert.Equal(t, of.FlagNotFoundCode, d.ErrorCode)
	d, err = client.BooleanValueDetails(ctx, "color", true, of.EvaluationContext{})
	require.Error(t, err)
	assert.Equal(t, of.TypeMismatchCode, d.ErrorCode)

	// A change in etcd is a configuration-changed event, and evaluations follow it.
	require.NoError(t, flags.Kill(ctx, "beta"))
	deadline := time.After(10 * time.Second)
	for killed := false; !killed; {
		select {
		case ev := <-changed:
			require.Len(t, ev.FlagChanges, 1)
			fl, err := flags.Flag(ev.FlagChanges[0])
			require.NoError(t, err)
			killed = ev.FlagChanges[0] == "beta" && fl.Killed
		case <-deadline:
			t.Fatal("no configuration-changed event for the kill switch")
		}
	}
	b, err = client.BooleanValueDetails(ctx, "beta", true, of.EvaluationContext{})
	require.NoError(t, err)
	assert.False(t, b.Value)
	assert.Equal(t, of.DisabledReason, b.Reason)
}

func TestProviderWithoutFlags(t *testing.T) {
	require.ErrorIs(t, cfgof.New(nil).Init(of.EvaluationContext{}), config.ErrInvalidArgument)
}
