package txn_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/txn"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func get(ctx context.Context, t *testing.T, kv clientv3.KV, key string) (string, int64, bool) {
	t.Helper()
	resp, err := kv.Get(ctx, key)
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision, true
}

func TestBadInput(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	inc := func(old []byte) ([]byte, error) { return old, nil }
	noop := func(concurrency.STM) error { return nil }
	bad := func(err error, text string) {
		t.Helper()
		require.ErrorIs(t, err, txn.ErrInvalidArgument)
		assert.Contains(t, err.Error(), text)
	}

	_, err := txn.Update(ctx, nil, "/k", inc)
	bad(err, "nil client")
	_, err = txn.Update(ctx, cli, "", inc)
	bad(err, "empty key")
	_, err = txn.Update(ctx, cli, "/k", nil)
	bad(err, "nil update function")
	_, err = txn.Update(ctx, cli, "/k", inc, txn.WithRetries(-1))
	bad(err, "WithRetries")
	_, err = txn.Update(ctx, cli, "/k", inc, nil)
	bad(err, "option 0 is nil")
	_, err = txn.CompareAndSwap(ctx, nil, "/k", txn.Absent(), nil)
	bad(err, "nil client")
	_, err = txn.PutIfAbsent(ctx, cli, "", nil)
	bad(err, "empty key")
	_, err = txn.DeleteIf(ctx, cli, "", txn.Absent())
	bad(err, "empty key")
	_, err = txn.Atomic(ctx, nil, noop)
	bad(err, "nil client")
	_, err = txn.Atomic(ctx, cli, nil)
	bad(err, "nil transaction function")
	_, err = txn.Atomic(ctx, cli, noop, txn.WithIsolation(99))
	bad(err, "WithIsolation")
	_, err = txn.Atomic(ctx, cli, noop, txn.WithRetries(-3))
	bad(err, "WithRetries")

	// An option the call would ignore is an error, not silence.
	_, err = txn.CompareAndSwap(ctx, cli, "/k", txn.Absent(), nil, txn.WithRetries(3))
	bad(err, "CompareAndSwap does not use WithRetries")
	_, err = txn.PutIfAbsent(ctx, cli, "/k", nil, txn.WithIsolation(concurrency.Serializable))
	bad(err, "PutIfAbsent does not use WithIsolation")
	_, err = txn.Update(ctx, cli, "/k", inc, txn.WithIsolation(concurrency.Serializable))
	bad(err, "Update does not use WithIsolation")
	_, err = txn.Atomic(ctx, cli, noop, txn.WithLease(1))
	bad(err, "Atomic does not use WithLease")
	_, _, ok := get(ctx, t, cli, "/k")
	assert.False(t, ok, "refused calls write nothing")

	var b txn.Batch
	_, err = b.Commit(ctx, cli)
	assert.ErrorIs(t, err, txn.ErrEmptyBatch)
	assert.ErrorIs(t, err, txn.ErrInvalidArgument)
	_, err = b.Put("", nil).Commit(ctx, cli)
	bad(err, "empty key")
	_, err = new(txn.Batch).Put("/k", nil).Commit(ctx, nil)
	bad(err, "nil client")
}

func TestCompareAndSwapByValueAndRevision(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "k"

	rev, err := txn.PutIfAbsent(ctx, cli, key, []byte("1"))
	require.NoError(t, err)
	_, err = txn.PutIfAbsent(ctx, cli, key, []byte("x"))
	var ce *txn.ConflictError
	require.ErrorAs(t, err, &ce)
	require.ErrorIs(t, err, txn.ErrConflict)
	require.NotNil(t, ce.Current)
	assert.Equal(t, "1", string(ce.Current.Value))
	assert.Equal(t, rev, ce.Current.ModRevision)

	_, err = txn.CompareAndSwap(ctx, cli, key, txn.ValueIs([]byte("nope")), []byte("2"))
	require.ErrorIs(t, err, txn.ErrConflict)
	rev2, err := txn.CompareAndSwap(ctx, cli, key, txn.ValueIs([]byte("1")), []byte("2"))
	require.NoError(t, err)
	assert.Greater(t, rev2, rev)

	_, err = txn.CompareAndSwap(ctx, cli, key, txn.ModRevisionIs(rev), []byte("3"))
	require.ErrorIs(t, err, txn.ErrConflict, "stale revision")
	rev3, err := txn.CompareAndSwap(ctx, cli, key, txn.ModRevisionIs(rev2), []byte("3"))
	require.NoError(t, err)
	v, mod, _ := get(ctx, t, cli, key)
	assert.Equal(t, "3", v)
	assert.Equal(t, rev3, mod)

	// ValueIs never matches an absent key, even against an empty value.
	_, err = txn.CompareAndSwap(ctx, cli, key+"/absent", txn.ValueIs(nil), []byte("x"))
	require.ErrorAs(t, err, &ce)
	assert.Nil(t, ce.Current)
	_, err = txn.CompareAndSwap(ctx, cli, key+"/absent", txn.ModRevisionIs(0), []byte("x"))
	require.NoError(t, err, "ModRevisionIs(0) means absent")
}

func TestCompareAndSwapWithLease(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "k"
	l, err := cli.Grant(ctx, 30)
	require.NoError(t, err)
	_, err = txn.PutIfAbsent(ctx, cli, key, []byte("v"), txn.WithLease(l.ID))
	require.NoError(t, err)
	_, err = cli.Revoke(ctx, l.ID)
	require.NoError(t, err)
	_, _, ok := get(ctx, t, cli, key)
	assert.False(t, ok, "the key went with its lease")
}

func TestDeleteIf(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "k"
	r, err := cli.Put(ctx, key, "v")
	require.NoError(t, err)

	_, err = txn.DeleteIf(ctx, cli, key, txn.ValueIs([]byte("other")))
	require.ErrorIs(t, err, txn.ErrConflict)
	_, err = txn.DeleteIf(ctx, cli, key, txn.ModRevisionIs(r.Header.Revision-1))
	require.ErrorIs(t, err, txn.ErrConflict)
	_, _, ok := get(ctx, t, cli, key)
	require.True(t, ok)
	_, err = txn.DeleteIf(ctx, cli, key, txn.ModRevisionIs(r.Header.Revision))
	require.NoError(t, err)
	_, _, ok = get(ctx, t, cli, key)
	require.False(t, ok)

	_, err = cli.Put(ctx, key, "v")
	require.NoError(t, err)
	_, err = txn.DeleteIf(ctx, cli, key, txn.ValueIs([]byte("v")))
	require.NoError(t, err)
	_, _, ok = get(ctx, t, cli, key)
	assert.False(t, ok)
}

func TestUpdate(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "k"

	var olds [][]byte
	appendX := func(old []byte) ([]byte, error) {
		olds = append(olds, old)
		return append(append([]byte{}, old...), 'x'), nil
	}
	_, err := txn.Update(ctx, cli, key, appendX)
	require.NoError(t, err)
	rev, err := txn.Update(ctx, cli, key, appendX)
	require.NoError(t, err)
	require.Len(t, olds, 2)
	assert.Nil(t, olds[0], "absent key: nil")
	assert.Equal(t, "x", string(olds[1]))
	v, mod, _ := get(ctx, t, cli, key)
	assert.Equal(t, "xx", v)
	assert.Equal(t, rev, mod)

	// An empty value is not absent.
	_, err = cli.Put(ctx, key, "")
	require.NoError(t, err)
	olds = nil
	_, err = txn.Update(ctx, cli, key, appendX)
	require.NoError(t, err)
	require.NotNil(t, olds[0])
	assert.Empty(t, olds[0])

	// fn's error aborts without a write.
	boom := errors.New("boom")
	_, err = txn.Update(ctx, cli, key, func([]byte) ([]byte, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	v, _, _ = get(ctx, t, cli, key)
	assert.Equal(t, "x", v)

	// nil deletes.
	_, err = txn.Update(ctx, cli, key, func([]byte) ([]byte, error) { return nil, nil })
	require.NoError(t, err)
	_, _, ok := get(ctx, t, cli, key)
	assert.False(t, ok)
}

func TestUpdateGivesUpAfterRetries(t *testing.T) {
	cli := etcdtest.Client(t)
	other := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "k"
	calls := 0
	// Every call sees the key change under it.
	_, err := txn.Update(ctx, cli, key, func(old []byte) ([]byte, error) {
		calls++
		_, err := other.Put(ctx, key, strconv.Itoa(calls))
		require.NoError(t, err)
		return []byte("mine"), nil
	}, txn.WithRetries(3))
	var ce *txn.ConflictError
	require.ErrorAs(t, err, &ce)
	require.ErrorIs(t, err, txn.ErrConflict)
	assert.Equal(t, 4, calls)
	assert.Equal(t, 4, ce.Attempts)
	require.NotNil(t, ce.Current)
	assert.Equal(t, "4", string(ce.Current.Value))
}

func TestUpdateHonoursCancelledContext(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := txn.Update(ctx, cli, etcdtest.Prefix(t)+"k", func(old []byte) ([]byte, error) { return old, nil })
	require.ErrorIs(t, err, context.Canceled)
	_, err = txn.Atomic(ctx, cli, func(s concurrency.STM) error { s.Get("/x"); return nil })
	require.ErrorIs(t, err, context.Canceled)
}

func TestBatch(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	p := etcdtest.Prefix(t)
	_, err := cli.Put(ctx, p+"a", "1")
	require.NoError(t, err)

	var b txn.Batch
	b.If(p+"a", txn.ValueIs([]byte("1"))).If(p+"b", txn.Absent())
	b.Put(p+"b", []byte("2")).Delete(p + "a")
	rev, err := b.Commit(ctx, cli)
	require.NoError(t, err)
	_, _, ok := get(ctx, t, cli, p+"a")
	assert.False(t, ok)
	v, mod, _ := get(ctx, t, cli, p+"b")
	assert.Equal(t, "2", v)
	assert.Equal(t, rev, mod)

	// The same batch again: its guards fail and nothing is written.
	var b2 txn.Batch
	b2.If(p+"b", txn.Absent()).Put(p+"c", []byte("3")).Put(p+"b", []byte("x"))
	_, err = b2.Commit(ctx, cli)
	require.ErrorIs(t, err, txn.ErrConflict)
	var ce *txn.ConflictError
	require.ErrorAs(t, err, &ce, "a *ConflictError, as the Guarantees promise")
	assert.Equal(t, p+"b", ce.Key, "the guard that failed")
	require.NotNil(t, ce.Current)
	assert.Equal(t, "2", string(ce.Current.Value))
	assert.Equal(t, 1, ce.Attempts)
	_, _, ok = get(ctx, t, cli, p+"c")
	assert.False(t, ok)
	v, _, _ = get(ctx, t, cli, p+"b")
	assert.Equal(t, "2", v)
}

func TestAtomicTransfers(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 30*time.Second)
	p := etcdtest.Prefix(t)
	_, err := cli.Put(ctx, p+"a", "100")
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"b", "100")
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			from, to := p+"a", p+"b"
			if i%2 == 1 {
				from, to = to, from
			}
			_, err := txn.Atomic(ctx, cli, func(s concurrency.STM) error {
				f, _ := strconv.Atoi(s.Get(from))
				g, _ := strconv.Atoi(s.Get(to))
				s.Put(from, strconv.Itoa(f-1))
				s.Put(to, strconv.Itoa(g+1))
				return nil
			}, txn.WithRetries(1000))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	a, _, _ := get(ctx, t, cli, p+"a")
	b, _, _ := get(ctx, t, cli, p+"b")
	ai, _ := strconv.Atoi(a)
	bi, _ := strconv.Atoi(b)
	assert.Equal(t, 200, ai+bi, "no transfer lost or doubled")
	assert.Equal(t, 100, ai, "10 each way")

	// fn's error aborts without a write.
	boom := errors.New("boom")
	_, err = txn.Atomic(ctx, cli, func(s concurrency.STM) error {
		s.Put(p+"a", "0")
		return boom
	})
	require.ErrorIs(t, err, boom)
	a, _, _ = get(ctx, t, cli, p+"a")
	assert.Equal(t, "100", a)
}

func TestAtomicGivesUpAfterRetries(t *testing.T) {
	cli := etcdtest.Client(t)
	other := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	key := etcdtest.Prefix(t) + "k"
	calls := 0
	_, err := txn.Atomic(ctx, cli, func(s concurrency.STM) error {
		calls++
		s.Get(key)
		_, err := other.Put(ctx, key, strconv.Itoa(calls)) // a conflicting write every time
		if err != nil {
			return err
		}
		s.Put(key, "mine")
		return nil
	}, txn.WithRetries(2), txn.WithIsolation(concurrency.Serializable))
	require.ErrorIs(t, err, txn.ErrConflict)
	var ce *txn.ConflictError
	require.ErrorAs(t, err, &ce, "a *ConflictError, as the Guarantees promise")
	assert.Equal(t, 3, ce.Attempts)
	assert.Equal(t, 3, calls)
}

// A batch names the first guard that failed, whatever kind of comparison it is, and
// what etcd holds there.
func TestBatchConflictNamesTheFailedGuard(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 10*time.Second)
	p := etcdtest.Prefix(t)
	r, err := cli.Put(ctx, p+"a", "1")
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"r/1", "x")
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"r/2", "y")
	require.NoError(t, err)

	cases := []struct {
		name    string
		build   func(b *txn.Batch)
		key     string
		current string // "" when absent
	}{
		{"value", func(b *txn.Batch) { b.If(p+"a", txn.ValueIs([]byte("1"))).If(p+"zz", txn.ValueIs([]byte("1"))) }, p + "zz", ""},
		{"mod revision", func(b *txn.Batch) { b.If(p+"a", txn.ModRevisionIs(r.Header.Revision-1)) }, p + "a", "1"},
		{"absent", func(b *txn.Batch) { b.If(p+"zz", txn.Absent()).If(p+"a", txn.Absent()) }, p + "a", "1"},
		{"raw version", func(b *txn.Batch) {
			b.IfCmp(clientv3.Compare(clientv3.Version(p+"a"), ">", 0), clientv3.Compare(clientv3.Version(p+"a"), ">", 1))
		}, p + "a", "1"},
		{"raw range", func(b *txn.Batch) {
			b.IfCmp(clientv3.Compare(clientv3.Value(p+"r/"), "=", "x").WithPrefix())
		}, p + "r/2", "y"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b txn.Batch
			tc.build(&b)
			b.Put(p+"out", []byte("written"))
			_, err := b.Commit(ctx, cli)
			var ce *txn.ConflictError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.key, ce.Key)
			if tc.current == "" {
				assert.Nil(t, ce.Current)
			} else if assert.NotNil(t, ce.Current) {
				assert.Equal(t, tc.current, string(ce.Current.Value))
			}
			_, _, ok := get(ctx, t, cli, p+"out")
			assert.False(t, ok, "nothing written")
		})
	}
}
