package watch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/watch"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestConstructorsRejectBadInput(t *testing.T) {
	cli := etcdtest.Client(t)
	cases := []struct {
		name string
		cli  *clientv3.Client
		key  string
		opts []watch.Option
		text string
	}{
		{"nil client", nil, "/k", nil, "nil client"},
		{"empty key", cli, "", nil, "empty"},
		{"nil option", cli, "/k", []watch.Option{watch.WithProgressInterval(time.Second), nil}, "option 1 is nil"},
		{"negative buffer", cli, "/k", []watch.Option{watch.WithBuffer(-1)}, "WithBuffer"},
		{"negative revision", cli, "/k", []watch.Option{watch.WithStartRevision(-1)}, "WithStartRevision"},
		{"zero progress interval", cli, "/k", []watch.Option{watch.WithProgressInterval(0)}, "WithProgressInterval"},
		{"nil logger", cli, "/k", []watch.Option{watch.WithLogger(nil)}, "WithLogger"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, err := watch.NewWatcher(tc.cli, tc.key, tc.opts...)
			require.ErrorIs(t, err, watch.ErrInvalidArgument)
			assert.Nil(t, w)
			assert.Contains(t, err.Error(), tc.text)
			c, err := watch.NewCache(tc.cli, tc.key, tc.opts...)
			require.ErrorIs(t, err, watch.ErrInvalidArgument)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tc.text)
		})
	}
}

// Options only a Watcher uses are an error for NewCache, not silently ignored.
func TestCacheRefusesWatcherOptions(t *testing.T) {
	cli := etcdtest.Client(t)
	for name, opt := range map[string]watch.Option{
		"WithPrefix":        watch.WithPrefix(),
		"WithStartRevision": watch.WithStartRevision(5),
		"WithPrevKV":        watch.WithPrevKV(),
		"WithInitialState":  watch.WithInitialState(),
		"WithBuffer":        watch.WithBuffer(8),
	} {
		c, err := watch.NewCache(cli, "/k/", opt)
		require.ErrorIs(t, err, watch.ErrInvalidArgument, name)
		assert.Nil(t, c)
		assert.Contains(t, err.Error(), name)
		w, err := watch.NewWatcher(cli, "/k/", opt)
		require.NoError(t, err, name)
		require.NoError(t, w.Close())
	}
}

// next receives one event or fails the test.
func next(t *testing.T, w *watch.Watcher) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		require.True(t, ok, "events closed: %v", w.Err())
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return watch.Event{}
	}
}

func TestWatcherDeliversPutsAndDeletesInOrder(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	resp, err := cli.Get(ctx, p)
	require.NoError(t, err)
	w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithPrevKV(),
		watch.WithStartRevision(resp.Header.Revision+1))
	require.NoError(t, err)
	defer w.Close()

	_, err = cli.Put(ctx, p+"a", "1")
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"a", "2")
	require.NoError(t, err)
	_, err = cli.Put(ctx, "/elsewhere"+p, "x") // outside the prefix
	require.NoError(t, err)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut(p+"b", "3"), clientv3.OpDelete(p+"a")).Commit()
	require.NoError(t, err)

	ev := next(t, w)
	assert.Equal(t, watch.Put, ev.Type)
	assert.Equal(t, p+"a", ev.KV.Key)
	assert.Equal(t, "1", string(ev.KV.Value))
	assert.Nil(t, ev.PrevKV)
	ev = next(t, w)
	assert.Equal(t, "2", string(ev.KV.Value))
	require.NotNil(t, ev.PrevKV)
	assert.Equal(t, "1", string(ev.PrevKV.Value))
	assert.EqualValues(t, 2, ev.KV.Version)
	ev1, ev2 := next(t, w), next(t, w)
	assert.Equal(t, ev1.Revision, ev2.Revision, "one transaction, one revision")
	assert.Equal(t, watch.Put, ev1.Type)
	assert.Equal(t, p+"b", ev1.KV.Key)
	assert.Equal(t, watch.Delete, ev2.Type)
	assert.Equal(t, p+"a", ev2.KV.Key)
	assert.Equal(t, ev2.Revision, ev2.KV.ModRevision)

	require.NoError(t, w.Close())
	require.NoError(t, w.Close())
	_, ok := <-w.Events()
	assert.False(t, ok, "Events closed after Close")
	assert.ErrorIs(t, w.Err(), watch.ErrClosed)
}

func TestWatcherSingleKeyFromNow(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	key := etcdtest.Prefix(t) + "k"
	_, err := cli.Put(ctx, key, "before")
	require.NoError(t, err)
	w, err := watch.NewWatcher(cli, key)
	require.NoError(t, err)
	defer w.Close()
	// "From now" is fixed when the Watcher starts; keep writing until it is past.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, err := cli.Put(ctx, key+"/child", "x") // a longer key: not watched
		if !assert.NoError(ct, err) {
			return
		}
		_, err = cli.Put(ctx, key, "after")
		if !assert.NoError(ct, err) {
			return
		}
		select {
		case ev := <-w.Events():
			assert.Equal(ct, key, ev.KV.Key)
			assert.Equal(ct, "after", string(ev.KV.Value))
		case <-time.After(100 * time.Millisecond):
			ct.Errorf("no event for the write at %s", key)
		}
	}, 10*time.Second, 10*time.Millisecond)
}

func TestWatcherStartRevisionReplaysHistory(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	var first int64
	for i := range 5 {
		r, err := cli.Put(ctx, fmt.Sprintf("%s%d", p, i), "v")
		require.NoError(t, err)
		if i == 0 {
			first = r.Header.Revision
		}
	}
	w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithStartRevision(first+2))
	require.NoError(t, err)
	defer w.Close()
	for i := 2; i < 5; i++ {
		ev := next(t, w)
		assert.Equal(t, fmt.Sprintf("%s%d", p, i), ev.KV.Key)
		assert.Equal(t, first+int64(i), ev.Revision)
	}
}

func TestWatcherInitialStateThenEvents(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	for _, k := range []string{"b", "a", "c"} {
		_, err := cli.Put(ctx, p+k, k)
		require.NoError(t, err)
	}
	w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithInitialState())
	require.NoError(t, err)
	defer w.Close()
	ev := next(t, w)
	require.Equal(t, watch.Resync, ev.Type)
	require.Len(t, ev.State, 3)
	assert.Equal(t, []string{p + "a", p + "b", p + "c"}, keysOf(ev.State))
	_, err = cli.Delete(ctx, p+"b")
	require.NoError(t, err)
	ev2 := next(t, w)
	assert.Equal(t, watch.Delete, ev2.Type)
	assert.Equal(t, ev.Revision+1, ev2.Revision)
}

func TestWatcherResyncsWhenStartIsCompacted(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	r1, err := cli.Put(ctx, p+"a", "1")
	require.NoError(t, err)
	_, err = cli.Put(ctx, p+"b", "2")
	require.NoError(t, err)
	r3, err := cli.Delete(ctx, p+"a")
	require.NoError(t, err)
	_, err = cli.Compact(ctx, r3.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)

	w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithStartRevision(r1.Header.Revision))
	require.NoError(t, err)
	defer w.Close()
	ev := next(t, w)
	require.Equal(t, watch.Resync, ev.Type)
	assert.Equal(t, []string{p + "b"}, keysOf(ev.State))
	assert.GreaterOrEqual(t, ev.Revision, r3.Header.Revision)
	_, err = cli.Put(ctx, p+"c", "3")
	require.NoError(t, err)
	ev = next(t, w)
	assert.Equal(t, watch.Put, ev.Type)
	assert.Equal(t, p+"c", ev.KV.Key)
}

// A start revision equal to the compaction revision is still in etcd: no Resync.
func TestWatcherStartAtCompactionRevision(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	_, err := cli.Put(ctx, p+"a", "1")
	require.NoError(t, err)
	r, err := cli.Put(ctx, p+"b", "2")
	require.NoError(t, err)
	_, err = cli.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithStartRevision(r.Header.Revision))
	require.NoError(t, err)
	defer w.Close()
	ev := next(t, w)
	assert.Equal(t, watch.Put, ev.Type)
	assert.Equal(t, p+"b", ev.KV.Key)
	assert.Equal(t, r.Header.Revision, ev.Revision)
}

func TestWatcherEndsWhenClientCloses(t *testing.T) {
	cli, err := etcdtest.NewClient()
	require.NoError(t, err)
	w, err := watch.NewWatcher(cli, etcdtest.Prefix(t), watch.WithPrefix())
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, cli.Close())
	select {
	case _, ok := <-w.Events():
		require.False(t, ok)
	case <-time.After(10 * time.Second):
		t.Fatal("Events not closed after the client closed")
	}
	assert.ErrorIs(t, w.Err(), watch.ErrClientClosed)
}

func TestWatcherCloseWhileConsumerAway(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	p := etcdtest.Prefix(t)
	r, err := cli.Get(ctx, p)
	require.NoError(t, err)
	w, err := watch.NewWatcher(cli, p, watch.WithPrefix(), watch.WithBuffer(0),
		watch.WithStartRevision(r.Header.Revision+1))
	require.NoError(t, err)
	for i := range 20 {
		_, err := cli.Put(ctx, fmt.Sprintf("%s%d", p, i), "v")
		require.NoError(t, err)
	}
	next(t, w) // the Watcher is now blocked handing over the second event
	done := make(chan struct{})
	go func() {
		w.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on an unread event")
	}
}

func keysOf(kvs []watch.KV) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

// etcdState reads prefix from etcd as key → value.
func etcdState(ctx context.Context, t *testing.T, cli *clientv3.Client, prefix string) map[string]string {
	t.Helper()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}
