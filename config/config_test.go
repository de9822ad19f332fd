package config_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/config"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func newStore(t *testing.T, ctx context.Context, cli *clientv3.Client, prefix string, opts ...config.Option) *config.Store {
	t.Helper()
	s, err := config.New(cli, prefix, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.NoError(t, s.WaitReady(ctx))
	return s
}

func TestTypedGetters(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)

	type DB struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	}
	require.NoError(t, s.Set(ctx, "name", "checkout"))
	require.NoError(t, s.Set(ctx, "pool/size", 10))
	require.NoError(t, s.Set(ctx, "ratio", 0.25))
	require.NoError(t, s.Set(ctx, "enabled", true))
	require.NoError(t, s.Set(ctx, "timeout", "1.5s"))
	require.NoError(t, s.Set(ctx, "retry/delay", 250*time.Millisecond))
	require.NoError(t, s.Set(ctx, "database", DB{Host: "db1", Port: 5432}))
	require.NoError(t, s.Set(ctx, "database/host", "db1"))
	require.NoError(t, s.Set(ctx, "raw", json.RawMessage(`{"a":[1,2]}`)))

	require.Eventually(t, func() bool { _, err := s.String("raw"); return !errors.Is(err, config.ErrNotFound) }, 10*time.Second, 10*time.Millisecond)
	str, err := s.String("name")
	require.NoError(t, err)
	assert.Equal(t, "checkout", str)
	n, err := s.Int("pool/size")
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	f, err := s.Float("ratio")
	require.NoError(t, err)
	assert.Equal(t, 0.25, f)
	f, err = s.Float("pool/size")
	require.NoError(t, err)
	assert.Equal(t, 10.0, f)
	b, err := s.Bool("enabled")
	require.NoError(t, err)
	assert.True(t, b)
	d, err := s.Duration("timeout")
	require.NoError(t, err)
	assert.Equal(t, 1500*time.Millisecond, d)
	d, err = s.Duration("retry/delay")
	require.NoError(t, err)
	assert.Equal(t, 250*time.Millisecond, d)
	var db DB
	require.NoError(t, s.Decode("database", &db))
	assert.Equal(t, DB{Host: "db1", Port: 5432}, db)
	host, err := s.String("database/host")
	require.NoError(t, err)
	assert.Equal(t, "db1", host)

	assert.Equal(t, []string{"database", "database/host"}, s.Keys("database"))
	assert.Equal(t, []string{"pool/size"}, s.Keys("pool"))
	assert.Len(t, s.Keys(""), 9)

	_, err = s.String("missing")
	assert.ErrorIs(t, err, config.ErrNotFound)
	require.NoError(t, s.Delete(ctx, "name"))
	require.Eventually(t, func() bool { _, err := s.String("name"); return errors.Is(err, config.ErrNotFound) }, 10*time.Second, 10*time.Millisecond)
}

// A value another tool wrote that is not JSON, or not the type asked for, fails only its
// own getter, with the key and expected type.
func TestBadValues(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	_, err := cli.Put(ctx, p+"broken", "{not json")
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"text", `"hello"`)
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"frac", `1.5`)
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"good", `42`)
	require.NoError(t, err)
	s := newStore(t, ctx, cli, p)

	check := func(err error, key, want string) {
		t.Helper()
		require.ErrorIs(t, err, config.ErrType)
		var te *config.TypeError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, key, te.Key)
		assert.Equal(t, want, te.Want)
		assert.Contains(t, err.Error(), key)
		assert.Contains(t, err.Error(), want)
	}
	_, err = s.Int("broken")
	check(err, "broken", "int")
	assert.Contains(t, err.Error(), "invalid JSON")
	_, err = s.String("broken")
	check(err, "broken", "string")
	_, err = s.Int("text")
	check(err, "text", "int")
	_, err = s.Bool("text")
	check(err, "text", "bool")
	_, err = s.Duration("text")
	check(err, "text", "duration")
	_, err = s.Int("frac")
	check(err, "frac", "int")
	_, err = s.Float("text")
	check(err, "text", "float")
	var v struct{ A int }
	err = s.Decode("text", &v)
	check(err, "text", "*struct { A int }")

	n, err := s.Int("good")
	require.NoError(t, err)
	assert.Equal(t, 42, n, "other keys keep working")
	str, err := s.String("text")
	require.NoError(t, err)
	assert.Equal(t, "hello", str)

	// Fixed by another write: the getter recovers.
	_, err = cli.Put(ctx, p+"broken", `7`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { n, err := s.Int("broken"); return err == nil && n == 7 }, 10*time.Second, 10*time.Millisecond)

	// Bad keys and arguments.
	for _, k := range []string{"", "/a", "a/", "a//b"} {
		_, err := s.String(k)
		assert.ErrorIs(t, err, config.ErrInvalidKey, k)
		assert.ErrorIs(t, s.Set(ctx, k, 1), config.ErrInvalidKey, k)
	}
	assert.ErrorIs(t, s.Set(ctx, "x", json.RawMessage(`{bad`)), config.ErrType)
	_, err = config.New(nil, p)
	assert.ErrorIs(t, err, config.ErrInvalidArgument)
	_, err = config.New(cli, "/")
	assert.ErrorIs(t, err, config.ErrInvalidArgument)
	_, err = config.New(cli, p, config.WithSnapshotPrefix(p+"snaps"))
	assert.ErrorIs(t, err, config.ErrInvalidArgument)
	_, err = s.Watch("a", nil)
	assert.ErrorIs(t, err, config.ErrInvalidArgument)
	_, err = config.New(cli, p, nil)
	assert.ErrorIs(t, err, config.ErrInvalidArgument)
	_, err = config.NewFlags(cli, p, config.WithReadyTimeout(time.Second), nil)
	assert.ErrorIs(t, err, config.ErrInvalidArgument)
	_, err = config.NewFlags(cli, p+"flags", config.WithSnapshotPrefix("/elsewhere"))
	require.ErrorIs(t, err, config.ErrInvalidArgument, "Flags take no snapshots: the option would be ignored")
	assert.Contains(t, err.Error(), "WithSnapshotPrefix")
	_, err = s.String("a//b")
	assert.ErrorIs(t, err, config.ErrInvalidArgument, "a bad key is an invalid argument too")
}

type changeLog struct {
	mu      sync.Mutex
	changes []config.Change
	at      []time.Time
}

func (l *changeLog) add(c config.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, c)
	l.at = append(l.at, time.Now())
}

func (l *changeLog) get() []config.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes)
}

// A change written by another client reaches Watch with old and new values (how fast is
// measured by BenchmarkChangeToCallback).
func TestWatchHotReload(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	cli, other := etcdtest.Client(t), etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)
	writer := newStore(t, ctx, other, p)

	var pool, all, exact changeLog
	cancel, err := s.Watch("pool", pool.add)
	require.NoError(t, err)
	defer cancel()
	cancelAll, err := s.Watch("", all.add)
	require.NoError(t, err)
	defer cancelAll()
	cancelExact, err := s.Watch("pool/size", func(c config.Change) {
		// The getter already has the new value when the callback runs.
		if c.New != nil {
			n, err := s.Int("pool/size")
			assert.NoError(t, err)
			assert.Equal(t, string(c.New), fmt.Sprint(n))
		}
		exact.add(c)
	})
	require.NoError(t, err)
	defer cancelExact()

	start := time.Now()
	require.NoError(t, writer.Set(ctx, "pool/size", 10))
	require.Eventually(t, func() bool { return len(pool.get()) == 1 }, 10*time.Second, 10*time.Millisecond)
	t.Logf("change reached the callback after %v", pool.at[0].Sub(start))
	require.NoError(t, writer.Set(ctx, "pool/size", 20))
	require.NoError(t, writer.Set(ctx, "pool/size", 20)) // same value: not a change
	require.NoError(t, writer.Set(ctx, "other", "x"))
	require.NoError(t, writer.Delete(ctx, "pool/size"))
	require.Eventually(t, func() bool { return len(all.get()) == 4 }, 10*time.Second, 10*time.Millisecond)

	got := pool.get()
	require.Len(t, got, 3)
	assert.Equal(t, "pool/size", got[0].Key)
	assert.Nil(t, got[0].Old)
	assert.JSONEq(t, "10", string(got[0].New))
	assert.JSONEq(t, "10", string(got[1].Old))
	assert.JSONEq(t, "20", string(got[1].New))
	assert.JSONEq(t, "20", string(got[2].Old))
	assert.Nil(t, got[2].New)
	assert.Less(t, got[0].Revision, got[1].Revision)
	assert.Len(t, exact.get(), 3)
	assert.Equal(t, "other", all.get()[2].Key)

	cancel()
	require.NoError(t, writer.Set(ctx, "pool/size", 30))
	require.Eventually(t, func() bool { return len(all.get()) == 5 }, 10*time.Second, 10*time.Millisecond)
	assert.Len(t, pool.get(), 3, "no calls after cancel")
}

// Guarantee 8: a restore is all-or-nothing.
func TestSnapshotRestore(t *testing.T) {
	ctx := etcdtest.Context(t, 30*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	s := newStore(t, ctx, cli, p)

	require.NoError(t, s.Set(ctx, "a", 1))
	require.NoError(t, s.Set(ctx, "b", "two"))
	v1, err := s.Snapshot(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, v1.Version)
	assert.Equal(t, 2, v1.Keys)

	require.NoError(t, s.Set(ctx, "a", 100))
	require.NoError(t, s.Delete(ctx, "b"))
	require.NoError(t, s.Set(ctx, "c", true))
	v2, err := s.Snapshot(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, v2.Version)

	// Let the Store catch up, so the watch below sees only the restore.
	require.Eventually(t, func() bool { c, err := s.Bool("c"); return err == nil && c }, 10*time.Second, 10*time.Millisecond)
	var log changeLog
	cancel, err := s.Watch("", log.add)
	require.NoError(t, err)
	defer cancel()

	require.NoError(t, s.Restore(ctx, v1.Version))
	require.Eventually(t, func() bool { return len(log.get()) == 3 }, 10*time.Second, 10*time.Millisecond)
	got := log.get()
	for _, c := range got {
		assert.Equal(t, got[0].Revision, c.Revision, "every key changed in one transaction")
	}
	resp, err := cli.Get(ctx, p, clientv3.WithPrefix())
	require.NoError(t, err)
	state := map[string]string{}
	for _, kv := range resp.Kvs {
		state[string(kv.Key)] = string(kv.Value)
	}
	assert.Equal(t, map[string]string{p + "a": "1", p + "b": `"two"`}, state)
	n, err := s.Int("a")
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	// Roll forward again.
	require.NoError(t, s.Restore(ctx, v2.Version))
	require.Eventually(t, func() bool { b, err := s.Bool("c"); return err == nil && b }, 10*time.Second, 10*time.Millisecond)

	infos, err := s.Snapshots(ctx)
	require.NoError(t, err)
	require.Len(t, infos, 2)
	assert.EqualValues(t, 1, infos[0].Version)

	assert.ErrorIs(t, s.Restore(ctx, 99), config.ErrSnapshotNotFound)

	// A restore too large for one transaction fails as a whole: nothing changes.
	for i := range 140 {
		require.NoError(t, s.Set(ctx, fmt.Sprintf("bulk/%03d", i), i))
	}
	big, err := s.Snapshot(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Restore(ctx, v1.Version))
	before, err := cli.Get(ctx, p, clientv3.WithPrefix())
	require.NoError(t, err)
	err = s.Restore(ctx, big.Version)
	require.Error(t, err)
	after, err := cli.Get(ctx, p, clientv3.WithPrefix())
	require.NoError(t, err)
	assert.Equal(t, before.Kvs, after.Kvs, "a failed restore changes nothing")
	require.NoError(t, s.DeleteSnapshot(ctx, big.Version))
	assert.ErrorIs(t, s.DeleteSnapshot(ctx, big.Version), config.ErrSnapshotNotFound)
}

func TestReadyTimeout(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	require.NoError(t, err)
	defer cli.Close()
	s, err := config.New(cli, "/nowhere", config.WithReadyTimeout(100*time.Millisecond))
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Int("x")
	assert.ErrorIs(t, err, config.ErrNotReady)
}
