package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/config"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// encoding/json matches field names case-insensitively, so a stored "Killed": true
// engages the kill switch; Revive must release it, not report success while the flag
// keeps serving the off variant. Kill must not leave a second spelling behind either.
func TestReviveReleasesKilledInAnyCase(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	f := newFlags(t, ctx, cli, p)
	_, err := cli.Put(ctx, p+"x", `{"variants":{"on":true,"off":false},"defaultVariant":"on","offVariant":"off","Killed":true}`)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ev, err := f.Evaluate("x", config.EvalContext{})
		assert.NoError(ct, err)
		assert.Equal(ct, config.ReasonDisabled, ev.Reason, "the stored definition is killed")
	}, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, f.Revive(ctx, "x"))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ev, err := f.Evaluate("x", config.EvalContext{})
		assert.NoError(ct, err)
		assert.NotEqual(ct, config.ReasonDisabled, ev.Reason, "Revive returned nil: the flag is no longer killed")
	}, 10*time.Second, 10*time.Millisecond)

	_, err = cli.Put(ctx, p+"x", `{"variants":{"on":true,"off":false},"defaultVariant":"on","offVariant":"off","KILLED":false}`)
	require.NoError(t, err)
	require.NoError(t, f.Kill(ctx, "x"))
	obj := rawObject(ctx, t, cli, p+"x")
	assert.Equal(t, "true", string(obj["killed"]))
	assert.NotContains(t, obj, "KILLED", "one spelling of the field")
}

// A flag whose old definition did not parse and whose new one is valid is reported
// without an error: Err describes the new definition.
func TestFlagChangeErrIsAboutNew(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	f := newFlags(t, ctx, cli, p)
	got := make(chan config.FlagChange, 10)
	stop, err := f.Watch(func(c config.FlagChange) { got <- c })
	require.NoError(t, err)
	defer stop()
	next := func() config.FlagChange {
		t.Helper()
		select {
		case c := <-got:
			return c
		case <-ctx.Done():
			t.Fatal("no flag change")
			return config.FlagChange{}
		}
	}

	_, err = cli.Put(ctx, p+"x", `{not json`)
	require.NoError(t, err)
	c := next()
	assert.ErrorIs(t, c.Err, config.ErrInvalidFlag, "the new definition does not parse")
	require.NoError(t, f.Set(ctx, "x", config.BoolFlag(true)))
	c = next()
	require.NotNil(t, c.New)
	assert.Nil(t, c.Old, "the old definition did not parse")
	assert.NoError(t, c.Err, "the new definition is valid")
	_, err = cli.Put(ctx, p+"x", `{"variants":{"a":1},"defaultVariant":"b"}`)
	require.NoError(t, err)
	c = next()
	assert.ErrorIs(t, c.Err, config.ErrInvalidFlag, "the new definition does not validate")
}

// Raw hands out a copy; a Watch callback's Change does not hand out the Store's own
// bytes either, or a callback that reuses the slice would change what getters return.
func TestChangeBytesAreCopies(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)
	done := make(chan struct{}, 2)
	stop, err := s.Watch("k", func(c config.Change) {
		copy(c.New, `"zzzzz"`) // e.g. a decoder that works in place
		copy(c.Old, `"yyyyy"`)
		done <- struct{}{}
	})
	require.NoError(t, err)
	defer stop()
	// A second watcher of the same key sees the bytes as stored.
	seen := make(chan string, 2)
	stop2, err := s.Watch("k", func(c config.Change) { seen <- string(c.New) })
	require.NoError(t, err)
	defer stop2()
	for _, v := range []string{"hello", "world"} {
		require.NoError(t, s.Set(ctx, "k", v))
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("no change")
		}
		select {
		case got := <-seen:
			assert.Equal(t, `"`+v+`"`, got)
		case <-ctx.Done():
			t.Fatal("no change")
		}
		raw, err := s.Raw("k")
		require.NoError(t, err)
		assert.Equal(t, `"`+v+`"`, string(raw), "a callback changed the Store's memory")
	}
}
