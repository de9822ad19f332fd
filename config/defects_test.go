package config_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/config"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// Issue 15 item 6: a snapshot stores bytes, not text: values and keys that are not
// valid UTF-8 come back exactly.
func TestSnapshotKeepsBytes(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)
	vals := map[string]string{
		p + "bin":      "\xff\xfe\x00abc",
		p + "key\xff":  "\"text\"",
		p + "latin1":   "caf\xe9",
		p + "plain":    "42",
		p + "emptyish": "",
	}
	for k, v := range vals {
		_, err := cli.Put(ctx, k, v)
		require.NoError(t, err)
	}
	snap, err := s.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, len(vals), snap.Keys)
	for k := range vals {
		_, err := cli.Put(ctx, k, "changed")
		require.NoError(t, err)
	}
	require.NoError(t, s.Restore(ctx, snap.Version))
	got := etcdBytes(ctx, t, cli, p)
	assert.Equal(t, vals, got)
}

// Snapshots taken before the byte-exact format stay listable and restorable.
func TestRestoreOldFormatSnapshot(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)
	snapPfx := strings.TrimSuffix(p, "/") + ".snapshots/"
	old := `{"version":1,"revision":7,"created":"2026-01-02T03:04:05Z","keys":2,"values":{"a":"1","b/c":"\"two\""}}`
	_, err := cli.Put(ctx, snapPfx+"seq", "1")
	require.NoError(t, err)
	_, err = cli.Put(ctx, snapPfx+"v/"+fmt.Sprintf("%020d", 1), old)
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "z", true))

	infos, err := s.Snapshots(ctx)
	require.NoError(t, err)
	require.Len(t, infos, 1)
	assert.EqualValues(t, 1, infos[0].Version)
	assert.Equal(t, 2, infos[0].Keys)
	assert.EqualValues(t, 7, infos[0].Revision)

	require.NoError(t, s.Restore(ctx, 1))
	assert.Equal(t, map[string]string{p + "a": "1", p + "b/c": `"two"`}, etcdBytes(ctx, t, cli, p))
	next, err := s.Snapshot(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, next.Version, "the sequence carries on")
}

func etcdBytes(ctx context.Context, t *testing.T, cli *clientv3.Client, prefix string) map[string]string {
	t.Helper()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// Issue 15 item 7: the kill switch changes only "killed": unknown fields and numbers
// beyond float64's precision stay exactly as written.
func TestKillKeepsTheDefinition(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	f := newFlags(t, ctx, cli, p)
	def := `{"variants":{"big":9007199254740993,"off":0},"defaultVariant":"big","offVariant":"off","owner":"team-a","x-meta":{"ticket":12345678901234567890}}`
	_, err := cli.Put(ctx, p+"limit", def)
	require.NoError(t, err)

	require.NoError(t, f.Kill(ctx, "limit"))
	killed := rawObject(ctx, t, cli, p+"limit")
	assert.Equal(t, "true", string(killed["killed"]))
	want := rawObject(ctx, t, cli, p+"limit")
	delete(want, "killed")
	orig := map[string]json.RawMessage{}
	require.NoError(t, json.Unmarshal([]byte(def), &orig))
	assert.Equal(t, orig, want, "every other field byte for byte")
	waitFlag(t, f, "limit", func(fl config.Flag) bool { return fl.Killed })
	ev, err := f.Evaluate("limit", config.EvalContext{})
	require.NoError(t, err)
	assert.Equal(t, "off", ev.Variant)

	require.NoError(t, f.Revive(ctx, "limit"))
	revived := rawObject(ctx, t, cli, p+"limit")
	assert.Equal(t, orig, revived, "revived: the definition as it was")
	waitFlag(t, f, "limit", func(fl config.Flag) bool { return !fl.Killed })
	ev, err = f.Evaluate("limit", config.EvalContext{})
	require.NoError(t, err)
	assert.Equal(t, "big", ev.Variant)
}

func rawObject(ctx context.Context, t *testing.T, cli *clientv3.Client, key string) map[string]json.RawMessage {
	t.Helper()
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	out := map[string]json.RawMessage{}
	require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &out))
	return out
}

// An invalid definition can still be killed: the kill switch serves the off variant.
func TestKillSwitchWorksOnAnInvalidDefinition(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	f := newFlags(t, ctx, cli, p)
	// The rollout adds up to 60, not 100.
	_, err := cli.Put(ctx, p+"broken", `{"variants":{"on":true,"off":false},"defaultVariant":"on","offVariant":"off","rollout":[{"variant":"on","percent":60}]}`)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, err := f.Evaluate("broken", config.EvalContext{TargetingKey: "u"})
		assert.ErrorIs(ct, err, config.ErrInvalidFlag)
	}, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, f.Kill(ctx, "broken"))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ev, err := f.Evaluate("broken", config.EvalContext{TargetingKey: "u"})
		if assert.NoError(ct, err) {
			assert.Equal(ct, config.Evaluation{Flag: "broken", Variant: "off", Value: false, Reason: config.ReasonDisabled}, ev)
		}
	}, 10*time.Second, 10*time.Millisecond)
	assert.False(t, f.Enabled("broken", config.EvalContext{TargetingKey: "u"}))
	require.NoError(t, f.Revive(ctx, "broken"))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, err := f.Evaluate("broken", config.EvalContext{TargetingKey: "u"})
		assert.ErrorIs(ct, err, config.ErrInvalidFlag)
	}, 10*time.Second, 10*time.Millisecond)

	// Not JSON at all: nothing to kill, and Kill says so.
	_, err = cli.Put(ctx, p+"garbage", "{nope")
	require.NoError(t, err)
	assert.ErrorIs(t, f.Kill(ctx, "garbage"), config.ErrInvalidFlag)
}

// Issue 15 item 8: rules compare numbers as numbers, so a JSON-decoded float64 1000000
// (which fmt.Sprint prints as 1e+06) matches "1000000".
func TestRulesCompareNumbersAsNumbers(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	f := newFlags(t, ctx, cli, p)
	require.NoError(t, f.Set(ctx, "tier", config.Flag{
		Variants:       map[string]any{"big": "big", "small": "small", "vip": "vip"},
		DefaultVariant: "small",
		Rules: []config.Rule{
			{Attribute: "seats", Op: config.OpEquals, Values: []string{"1000000"}, Variant: "big"},
			{Attribute: "id", Op: config.OpIn, Values: []string{"1e3", "9007199254740993"}, Variant: "vip"},
		},
	}))
	waitFlag(t, f, "tier", func(config.Flag) bool { return true })
	for _, tc := range []struct {
		attrs map[string]any
		want  string
	}{
		{map[string]any{"seats": float64(1000000)}, "big"},
		{map[string]any{"seats": 1000000}, "big"},
		{map[string]any{"seats": int64(1000000)}, "big"},
		{map[string]any{"seats": uint32(1000000)}, "big"},
		{map[string]any{"seats": json.Number("1e6")}, "big"},
		{map[string]any{"seats": "1000000"}, "big"},
		{map[string]any{"seats": "1e6"}, "small"}, // a string is compared as a string
		{map[string]any{"seats": 1000000.5}, "small"},
		{map[string]any{"seats": math.NaN()}, "small"},
		{map[string]any{"id": 1000}, "vip"},
		{map[string]any{"id": float32(1000)}, "vip"},
		{map[string]any{"id": int64(9007199254740993)}, "vip"},
		{map[string]any{"id": int64(9007199254740992)}, "small"}, // exact, not via float64
	} {
		ev, err := f.Evaluate("tier", config.EvalContext{Attributes: tc.attrs})
		require.NoError(t, err)
		assert.Equal(t, tc.want, ev.Variant, "%#v", tc.attrs)
	}
}

// Issue 15 item 9: Int never returns a wrong value: overflow and rounding are type
// errors, exact integers in any JSON form are fine.
func TestIntIsExact(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)
	good := map[string]int{
		"min":     math.MinInt64,
		"max":     math.MaxInt64,
		"exp":     1000,
		"frac0":   10,
		"big":     9007199254740993,
		"negzero": 0,
	}
	raw := map[string]string{
		"min":      "-9223372036854775808",
		"max":      "9223372036854775807",
		"exp":      "1e3",
		"frac0":    "10.0",
		"big":      "9007199254740993.0",
		"negzero":  "-0",
		"under":    "-9223372036854775809",
		"over":     "9223372036854775808",
		"huge":     "1e20",
		"rounded":  "12345678901234567890",
		"fraction": "1.5",
		"tiny":     "1e-400",
	}
	for k, v := range raw {
		_, err := cli.Put(ctx, p+k, v)
		require.NoError(t, err)
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Len(ct, s.Keys(""), len(raw)) }, 10*time.Second, 10*time.Millisecond)
	for k := range raw {
		n, err := s.Int(k)
		if want, ok := good[k]; ok {
			assert.NoError(t, err, k)
			assert.Equal(t, want, n, k)
			continue
		}
		assert.ErrorIs(t, err, config.ErrType, "%s = %s gave %d", k, raw[k], n)
		var te *config.TypeError
		if assert.ErrorAs(t, err, &te, k) {
			assert.Equal(t, "int", te.Want)
		}
	}
}

// Issue 15 item 10: Close called from a Watch callback returns instead of deadlocking,
// and no callback runs after the current one.
func TestCloseFromWatchCallback(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)

	t.Run("Store", func(t *testing.T) {
		p := etcdtest.Prefix(t)
		s := newStore(t, ctx, cli, p)
		closed := make(chan error, 1)
		var calls int
		stop, err := s.Watch("", func(config.Change) {
			calls++
			if calls == 1 {
				closed <- s.Close()
			}
		})
		require.NoError(t, err)
		defer stop()
		require.NoError(t, s.Set(ctx, "a", 1))
		require.NoError(t, s.Set(ctx, "b", 2))
		select {
		case err := <-closed:
			assert.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("Close from a callback did not return")
		}
		assert.NoError(t, s.Close(), "idempotent")
		_, err = s.Watch("", func(config.Change) {})
		assert.ErrorIs(t, err, config.ErrClosed)
	})

	t.Run("Flags", func(t *testing.T) {
		p := etcdtest.Prefix(t)
		f := newFlags(t, ctx, cli, p)
		closed := make(chan error, 1)
		stop, err := f.Watch(func(config.FlagChange) { closed <- f.Close() })
		require.NoError(t, err)
		defer stop()
		require.NoError(t, f.Set(ctx, "x", config.BoolFlag(true)))
		select {
		case err := <-closed:
			assert.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("Close from a callback did not return")
		}
	})
}

// Issue 15 item 13: evaluations and definitions are copies; changing them changes
// nothing inside Flags.
func TestEvaluationsAreCopies(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	f := newFlags(t, ctx, cli, p)
	require.NoError(t, f.Set(ctx, "theme", config.Flag{
		Variants:       map[string]any{"dark": map[string]any{"colors": map[string]any{"bg": "black"}, "sizes": []any{1, 2}}},
		DefaultVariant: "dark",
		Rules:          []config.Rule{{Attribute: "plan", Op: config.OpIn, Values: []string{"pro"}, Variant: "dark"}},
	}))
	waitFlag(t, f, "theme", func(config.Flag) bool { return true })
	ev, err := f.Evaluate("theme", config.EvalContext{})
	require.NoError(t, err)
	v := ev.Value.(map[string]any)
	v["colors"].(map[string]any)["bg"] = "pink"
	v["sizes"].([]any)[0] = 99
	v["new"] = true

	fl, err := f.Flag("theme")
	require.NoError(t, err)
	fl.Variants["dark"] = "gone"
	fl.Rules[0].Values[0] = "free"

	ev, err = f.Evaluate("theme", config.EvalContext{})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"colors": map[string]any{"bg": "black"}, "sizes": []any{1.0, 2.0}}, ev.Value)
	ev, err = f.Evaluate("theme", config.EvalContext{Attributes: map[string]any{"plan": "pro"}})
	require.NoError(t, err)
	assert.Equal(t, config.ReasonTargetingMatch, ev.Reason, "the rule is unchanged")
}

// Duration accepts nanoseconds in any exact JSON form, and never rounds.
func TestDurationIsExact(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)
	for k, v := range map[string]string{"exp": "1e9", "frac": "1.5", "over": "1e19"} {
		_, err := cli.Put(ctx, p+k, v)
		require.NoError(t, err)
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Len(ct, s.Keys(""), 3) }, 10*time.Second, 10*time.Millisecond)
	d, err := s.Duration("exp")
	require.NoError(t, err)
	assert.Equal(t, time.Second, d)
	_, err = s.Duration("frac")
	assert.ErrorIs(t, err, config.ErrType)
	_, err = s.Duration("over")
	assert.ErrorIs(t, err, config.ErrType)
}

// Set refuses a string that JSON cannot carry instead of storing U+FFFD in its place.
func TestSetRefusesInvalidUTF8(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)
	assert.ErrorIs(t, s.Set(ctx, "k", "caf\xe9"), config.ErrInvalidArgument)
	resp, err := cli.Get(ctx, p+"k")
	require.NoError(t, err)
	assert.Empty(t, resp.Kvs, "nothing written")
	require.NoError(t, s.Set(ctx, "k", []byte("caf\xe9")), "bytes travel as base64")
}
