package queue_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/queue"
)

// TestMain runs the tests and examples against one in-process etcd and fails the run if
// any goroutine outlives them (etcdtest.Main checks with goleak).
func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestNewRejectsBadInput(t *testing.T) {
	cli := etcdtest.Client(t)
	_, err := queue.New(nil, "/q")
	assert.ErrorIs(t, err, queue.ErrInvalidArgument)
	_, err = queue.New(cli, "")
	assert.ErrorIs(t, err, queue.ErrInvalidArgument)
	for name, opt := range map[string]queue.Option{
		"nil":        nil,
		"visibility": queue.WithVisibilityTimeout(500 * time.Millisecond),
		"deliveries": queue.WithMaxDeliveries(-1),
		"dedup":      queue.WithDedupWindow(time.Second),
		"logger":     queue.WithLogger(nil),
		// Leases of these TTLs exceed etcd's largest (9e9s): every claim or WithID
		// enqueue would fail.
		"huge visibility": queue.WithVisibilityTimeout(math.MaxInt64),
		"huge dedup":      queue.WithDedupWindow(math.MaxInt64),
	} {
		_, err := queue.New(cli, "/q", opt)
		assert.ErrorIs(t, err, queue.ErrInvalidArgument, name)
		_, err = queue.NewPriority(cli, "/q", opt)
		assert.ErrorIs(t, err, queue.ErrInvalidArgument, name)
	}
	q, err := queue.New(cli, etcdtest.Prefix(t))
	require.NoError(t, err)
	defer q.Close()
	ctx := etcdtest.Context(t, 10*time.Second)
	_, err = q.Enqueue(ctx, []byte("x"), nil)
	assert.ErrorIs(t, err, queue.ErrInvalidArgument)
	_, err = q.Enqueue(ctx, []byte("x"), queue.WithID(""))
	assert.ErrorIs(t, err, queue.ErrInvalidArgument)
}

func TestFIFOAndAck(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	q, err := queue.New(cli, etcdtest.Prefix(t))
	require.NoError(t, err)
	defer q.Close()
	for i := range 5 {
		_, err := q.Enqueue(ctx, fmt.Appendf(nil, "v%d", i))
		require.NoError(t, err)
	}
	n, err := q.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	for i := range 5 {
		it, err := q.Dequeue(ctx)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("v%d", i), string(it.Value()))
		assert.Equal(t, 1, it.Deliveries())
		require.NoError(t, it.Ack(ctx))
		// A retried Ack (its first reply lost) finds the ack record and reports success.
		require.NoError(t, it.Ack(ctx), "a retried Ack after the claim is gone")
	}
	n, err = q.Len(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestPriorityOrder(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	q, err := queue.NewPriority(cli, etcdtest.Prefix(t))
	require.NoError(t, err)
	defer q.Close()
	for _, e := range []struct {
		p int
		v string
	}{{5, "c1"}, {-3, "a1"}, {5, "c2"}, {0, "b1"}, {-3, "a2"}, {1 << 40, "d1"}} {
		_, err := q.Enqueue(ctx, e.p, []byte(e.v))
		require.NoError(t, err)
	}
	var got []string
	for range 6 {
		it, err := q.Dequeue(ctx)
		require.NoError(t, err)
		got = append(got, fmt.Sprintf("%s@%d", it.Value(), it.Priority()))
		require.NoError(t, it.Ack(ctx))
	}
	assert.Equal(t, []string{"a1@-3", "a2@-3", "b1@0", "c1@5", "c2@5", "d1@1099511627776"}, got)
}

func TestClaimedItemIsInvisibleThenNackRedelivers(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	prefix := etcdtest.Prefix(t)
	q1, err := queue.New(cli, prefix)
	require.NoError(t, err)
	defer q1.Close()
	q2, err := queue.New(etcdtest.Client(t), prefix)
	require.NoError(t, err)
	defer q2.Close()
	_, err = q1.Enqueue(ctx, []byte("a"))
	require.NoError(t, err)
	_, err = q1.Enqueue(ctx, []byte("b"))
	require.NoError(t, err)

	a, err := q1.Dequeue(ctx)
	require.NoError(t, err)
	b, err := q2.Dequeue(ctx)
	require.NoError(t, err)
	assert.Equal(t, "a", string(a.Value()))
	assert.Equal(t, "b", string(b.Value()), "a claimed item is skipped")

	require.NoError(t, a.Nack(ctx))
	again, err := q2.Dequeue(ctx)
	require.NoError(t, err)
	assert.Equal(t, a.ID(), again.ID())
	assert.Equal(t, 2, again.Deliveries())
	assert.ErrorIs(t, a.Ack(ctx), queue.ErrClaimLost, "the first consumer gave it back")
	require.NoError(t, again.Ack(ctx))
	require.NoError(t, b.Ack(ctx))
}

func TestExpiredClaimRedeliversAndStaleAckFails(t *testing.T) {
	t.Parallel() // waits on leases and timers; its own prefix
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	q, err := queue.New(cli, etcdtest.Prefix(t), queue.WithVisibilityTimeout(time.Second))
	require.NoError(t, err)
	defer q.Close()
	_, err = q.Enqueue(ctx, []byte("x"))
	require.NoError(t, err)
	first, err := q.Dequeue(ctx)
	require.NoError(t, err)
	second, err := q.Dequeue(ctx) // waits on the watch until the claim expires
	require.NoError(t, err)
	assert.Equal(t, first.ID(), second.ID())
	assert.True(t, time.Now().After(first.Deadline()), "redelivered before the first claim's Deadline")
	assert.ErrorIs(t, first.Ack(ctx), queue.ErrClaimLost)
	assert.ErrorIs(t, first.Extend(ctx), queue.ErrClaimLost)
	require.NoError(t, second.Ack(ctx))
}

func TestExtendKeepsTheClaim(t *testing.T) {
	t.Parallel() // waits on leases and timers; its own prefix
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	prefix := etcdtest.Prefix(t)
	q, err := queue.New(cli, prefix, queue.WithVisibilityTimeout(time.Second))
	require.NoError(t, err)
	defer q.Close()
	_, err = q.Enqueue(ctx, []byte("x"))
	require.NoError(t, err)
	it, err := q.Dequeue(ctx)
	require.NoError(t, err)
	d0 := it.Deadline()

	other, err := queue.New(etcdtest.Client(t), prefix)
	require.NoError(t, err)
	defer other.Close()
	got := make(chan *queue.Item, 1)
	dctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		it, err := other.Dequeue(dctx)
		if err == nil {
			got <- it
		}
	})
	// Keep extending for three timeouts; the other consumer must not get the item.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		require.NoError(t, it.Extend(ctx))
		select {
		case o := <-got:
			t.Fatalf("item %s delivered while its claim was extended", o.ID())
		case <-time.After(300 * time.Millisecond):
		}
	}
	assert.True(t, it.Deadline().After(d0))
	cancel()
	wg.Wait()
	require.NoError(t, it.Ack(ctx))
}

func TestIdempotentEnqueue(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	q, err := queue.New(cli, etcdtest.Prefix(t))
	require.NoError(t, err)
	defer q.Close()
	for range 3 {
		id, err := q.Enqueue(ctx, []byte("once"), queue.WithID("job-1"))
		require.NoError(t, err)
		assert.Equal(t, "job-1", id)
	}
	n, err := q.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	it, err := q.Dequeue(ctx)
	require.NoError(t, err)
	assert.Equal(t, "job-1", it.ID())
	require.NoError(t, it.Ack(ctx))
	// Acknowledged, but still within the window: a late retry adds nothing.
	_, err = q.Enqueue(ctx, []byte("once"), queue.WithID("job-1"))
	require.NoError(t, err)
	n, err = q.Len(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestDedupWindowEnds(t *testing.T) {
	t.Parallel() // waits on leases and timers; its own prefix
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	q, err := queue.New(cli, etcdtest.Prefix(t), queue.WithDedupWindow(2*time.Second))
	require.NoError(t, err)
	defer q.Close()
	_, err = q.Enqueue(ctx, []byte("a"), queue.WithID("k"))
	require.NoError(t, err)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := q.Enqueue(ctx, []byte("b"), queue.WithID("k"))
		assert.NoError(c, err)
		n, err := q.Len(ctx)
		assert.NoError(c, err)
		assert.Equal(c, 2, n)
	}, 6*time.Second, 100*time.Millisecond)
}

func TestDeadLetterAfterMaxDeliveries(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	q, err := queue.New(cli, etcdtest.Prefix(t), queue.WithMaxDeliveries(2))
	require.NoError(t, err)
	defer q.Close()
	_, err = q.Enqueue(ctx, []byte("poison"), queue.WithID("p"))
	require.NoError(t, err)
	_, err = q.Enqueue(ctx, []byte("fine"))
	require.NoError(t, err)
	for i := 1; i <= 2; i++ {
		it, err := q.Dequeue(ctx)
		require.NoError(t, err)
		require.Equal(t, "poison", string(it.Value()))
		require.Equal(t, i, it.Deliveries())
		require.NoError(t, it.Nack(ctx))
	}
	it, err := q.Dequeue(ctx)
	require.NoError(t, err)
	assert.Equal(t, "fine", string(it.Value()), "the poison item is not delivered a third time")
	require.NoError(t, it.Ack(ctx))
	dead, err := q.DeadLetters(ctx)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, "p", dead[0].ID)
	assert.Equal(t, 2, dead[0].Deliveries)
	assert.Equal(t, "poison", string(dead[0].Value))
	require.NoError(t, q.DeleteDeadLetter(ctx, dead[0]))
	dead, err = q.DeadLetters(ctx)
	require.NoError(t, err)
	assert.Empty(t, dead)
	n, err := q.Len(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestDequeueWaitsForEnqueue(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	prefix := etcdtest.Prefix(t)
	q, err := queue.New(cli, prefix)
	require.NoError(t, err)
	defer q.Close()
	got := make(chan string, 1)
	errs := make(chan error, 1)
	go func() {
		it, err := q.Dequeue(ctx)
		if err != nil {
			errs <- err
			return
		}
		got <- string(it.Value())
		errs <- it.Ack(ctx)
	}()
	p, err := queue.New(etcdtest.Client(t), prefix)
	require.NoError(t, err)
	defer p.Close()
	_, err = p.Enqueue(ctx, []byte("late"))
	require.NoError(t, err)
	assert.Equal(t, "late", <-got)
	require.NoError(t, <-errs)
}

func TestDequeueHonoursContext(t *testing.T) {
	t.Parallel() // waits for its context to end; its own prefix
	cli := etcdtest.Client(t)
	q, err := queue.New(cli, etcdtest.Prefix(t))
	require.NoError(t, err)
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = q.Dequeue(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestCloseGivesClaimsBack(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := etcdtest.Context(t, 20*time.Second)
	prefix := etcdtest.Prefix(t)
	q, err := queue.New(cli, prefix) // 30s visibility: only Close can free it quickly
	require.NoError(t, err)
	_, err = q.Enqueue(ctx, []byte("x"))
	require.NoError(t, err)
	it, err := q.Dequeue(ctx)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	require.NoError(t, q.Close(), "Close is idempotent")
	_, err = q.Dequeue(ctx)
	assert.ErrorIs(t, err, queue.ErrClosed)
	_, err = q.Enqueue(ctx, nil)
	assert.ErrorIs(t, err, queue.ErrClosed)

	q2, err := queue.New(cli, prefix)
	require.NoError(t, err)
	defer q2.Close()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	again, err := q2.Dequeue(dctx)
	require.NoError(t, err)
	assert.Equal(t, it.ID(), again.ID())
	require.NoError(t, again.Ack(ctx))
}
