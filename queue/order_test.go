package queue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/tests/v3/framework/integration"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/queue"
)

// orderViolations replays the history of a queue's keys, from revision from up to the
// marker key, and returns every claim made while an older item (a smaller key under
// items/: a lower priority number, or the same priority and enqueued earlier) existed
// with no claim, in the state etcd held at the claim's revision. It reads the queue's
// key layout: items/<suffix>, claims/<suffix>.
func orderViolations(ctx context.Context, t *testing.T, cli *clientv3.Client, prefix string, from int64, marker string) []string {
	t.Helper()
	itemsP, claimsP := prefix+"/items/", prefix+"/claims/"
	items, claims := map[string]bool{}, map[string]bool{}
	var out []string
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(wctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(from))
	claimsMade := 0
	for {
		var resp clientv3.WatchResponse
		select {
		case resp = <-wch:
		case <-ctx.Done():
			t.Fatalf("history replay: %v", ctx.Err())
		}
		require.NoError(t, resp.Err())
		// Apply one revision at a time, then check the claims it created.
		evs := resp.Events
		for len(evs) > 0 {
			rev := evs[0].Kv.ModRevision
			n := 0
			for n < len(evs) && evs[n].Kv.ModRevision == rev {
				n++
			}
			var created []string
			for _, ev := range evs[:n] {
				k := string(ev.Kv.Key)
				if k == marker {
					assert.Positive(t, claimsMade, "the history holds claims")
					return out
				}
				put := ev.Type == clientv3.EventTypePut
				switch {
				case strings.HasPrefix(k, itemsP):
					items[strings.TrimPrefix(k, itemsP)] = put
				case strings.HasPrefix(k, claimsP):
					s := strings.TrimPrefix(k, claimsP)
					claims[s] = put
					if ev.IsCreate() {
						created = append(created, s)
					}
				}
			}
			for _, s := range created {
				claimsMade++
				var older []string
				for it, live := range items {
					if live && it < s && !claims[it] {
						older = append(older, it)
					}
				}
				if len(older) > 0 {
					sort.Strings(older)
					out = append(out, fmt.Sprintf("rev %d: claim of %s while older %v visible and unclaimed", rev, s, older))
				}
			}
			evs = evs[n:]
		}
	}
}

// TestClaimOrderWithManyConsumers has several consumers claim concurrently, giving back
// (Nack) some items and taking a while over others, while a producer keeps adding items
// of random priorities; then it replays etcd's history and checks that no claim was made
// while an older item was visible and unclaimed at the claim's revision.
func TestClaimOrderWithManyConsumers(t *testing.T) {
	for _, priorities := range []int{1, 3} {
		t.Run(fmt.Sprintf("priorities=%d", priorities), func(t *testing.T) {
			const (
				items     = 150
				consumers = 5
			)
			ctx := etcdtest.Context(t, 2*time.Minute)
			cli := etcdtest.Client(t)
			prefix := strings.TrimSuffix(etcdtest.Prefix(t), "/")
			start, err := cli.Get(ctx, "/", clientv3.WithCountOnly())
			require.NoError(t, err)

			prod, err := queue.NewPriority(cli, prefix)
			require.NoError(t, err)
			defer prod.Close()
			for i := range items / 3 {
				_, err := prod.Enqueue(ctx, i%priorities, fmt.Appendf(nil, "%d", i))
				require.NoError(t, err)
			}
			var acked atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := items / 3; i < items; i++ {
					if _, err := prod.Enqueue(ctx, rand.IntN(priorities), fmt.Appendf(nil, "%d", i)); err != nil {
						t.Errorf("enqueue: %v", err)
						return
					}
				}
			})
			for range consumers {
				wg.Go(func() {
					q, err := queue.NewPriority(etcdtest.Client(t), prefix)
					if err != nil {
						t.Error(err)
						return
					}
					defer q.Close()
					for acked.Load() < items && ctx.Err() == nil {
						dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
						it, err := q.Dequeue(dctx)
						cancel()
						if err != nil {
							continue
						}
						// Give back about a third of the first deliveries, so that older
						// items become visible again while others are being claimed.
						if it.Deliveries() == 1 && rand.IntN(3) == 0 {
							if err := it.Nack(ctx); err != nil {
								t.Errorf("nack: %v", err)
							}
							continue
						}
						if err := it.Ack(ctx); err != nil {
							t.Errorf("ack: %v", err)
							continue
						}
						acked.Add(1)
					}
				})
			}
			wg.Wait()
			require.Equal(t, int64(items), acked.Load(), "every item acknowledged")
			marker := prefix + "/zz-end"
			_, err = cli.Put(ctx, marker, "")
			require.NoError(t, err)
			bad := orderViolations(ctx, t, cli, prefix, start.Header.Revision+1, marker)
			assert.Empty(t, bad, "claims out of order")
		})
	}
}

// beforeClaim returns a consumer's client that runs fn once, just before the consumer's
// first claim transaction is sent: after it has read the queue and chosen an item.
func beforeClaim(t *testing.T, prefix string, fn func()) *clientv3.Client {
	cli, faults := etcdtest.FaultClient(t)
	var once sync.Once
	faults.Fail(func(_ string, req any) bool {
		if r, ok := req.(*pb.TxnRequest); ok {
			for _, op := range r.Success {
				if p := op.GetRequestPut(); p != nil && strings.HasPrefix(string(p.Key), prefix+"claims/") {
					once.Do(fn)
				}
			}
		}
		return false
	})
	return cli
}

// An older item given back between a consumer's read and its claim is the one it gets.
func TestClaimTakesAnItemGivenBackMeanwhile(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	prefix := etcdtest.Prefix(t)
	q1, err := queue.New(etcdtest.Client(t), prefix)
	require.NoError(t, err)
	defer q1.Close()
	for _, v := range []string{"a", "b"} {
		_, err := q1.Enqueue(ctx, []byte(v))
		require.NoError(t, err)
	}
	a, err := q1.Dequeue(ctx)
	require.NoError(t, err)
	require.Equal(t, "a", string(a.Value()))

	q2, err := queue.New(beforeClaim(t, prefix, func() { assert.NoError(t, a.Nack(ctx)) }), prefix)
	require.NoError(t, err)
	defer q2.Close()
	it, err := q2.Dequeue(ctx) // reads a claimed, b visible; a is given back before the claim
	require.NoError(t, err)
	assert.Equal(t, "a", string(it.Value()), "the older item, visible again at the claim")
	require.NoError(t, it.Ack(ctx))
}

// An item of a lower priority number added between a consumer's read and its claim is
// the one it gets.
func TestClaimTakesAHigherPriorityItemAddedMeanwhile(t *testing.T) {
	ctx := etcdtest.Context(t, 20*time.Second)
	prefix := etcdtest.Prefix(t)
	prod, err := queue.NewPriority(etcdtest.Client(t), prefix)
	require.NoError(t, err)
	defer prod.Close()
	_, err = prod.Enqueue(ctx, 5, []byte("low"))
	require.NoError(t, err)

	q, err := queue.NewPriority(beforeClaim(t, prefix, func() {
		_, err := prod.Enqueue(ctx, 0, []byte("urgent"))
		assert.NoError(t, err)
	}), prefix)
	require.NoError(t, err)
	defer q.Close()
	it, err := q.Dequeue(ctx)
	require.NoError(t, err)
	assert.Equal(t, "urgent", string(it.Value()), "the item of priority 0, visible at the claim")
	require.NoError(t, it.Ack(ctx))
}

// With more claimed items ahead than one transaction may compare, Dequeue still claims:
// past etcd's default --max-txn-ops (128) on the shared node, and past a small one.
func TestDequeueBehindManyClaimedItems(t *testing.T) {
	run := func(t *testing.T, cli *clientv3.Client, n int) {
		ctx := etcdtest.Context(t, time.Minute)
		q, err := queue.New(cli, etcdtest.Prefix(t))
		require.NoError(t, err)
		defer q.Close()
		for i := range n + 1 {
			_, err := q.Enqueue(ctx, fmt.Appendf(nil, "%d", i))
			require.NoError(t, err)
		}
		var held []*queue.Item
		for i := range n {
			it, err := q.Dequeue(ctx) // not acknowledged yet: every earlier item stays claimed
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(i), string(it.Value()))
			held = append(held, it)
		}
		// Acknowledge most of them at once: their claim keys wait for the next claim
		// transaction to delete them, more deletes than a small --max-txn-ops allows.
		for _, it := range held[:n*3/4] {
			require.NoError(t, it.Ack(ctx))
		}
		it, err := q.Dequeue(ctx)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(n), string(it.Value()))
	}
	t.Run("default", func(t *testing.T) { run(t, etcdtest.Client(t), 140) })
	t.Run("max-txn-ops=16", func(t *testing.T) {
		c := etcdtest.NewCluster(t, 1, etcdtest.WithConfig(func(cfg *integration.ClusterConfig) { cfg.MaxTxnOps = 16 }))
		run(t, c.Client(0), 40)
	})
}

// Acknowledged claim keys whose deletes did not fit in one claim transaction (a small
// --max-txn-ops) are deleted by the following claims, not left on leases that the Queue
// keeps renewing for its next claims.
func TestAckedClaimKeysDeletedUnderSmallMaxTxnOps(t *testing.T) {
	c := etcdtest.NewCluster(t, 1, etcdtest.WithConfig(func(cfg *integration.ClusterConfig) { cfg.MaxTxnOps = 16 }))
	cli := c.Client(0)
	ctx := etcdtest.Context(t, time.Minute)
	prefix := etcdtest.Prefix(t)
	q, err := queue.New(cli, prefix, queue.WithVisibilityTimeout(time.Minute))
	require.NoError(t, err)
	defer q.Close()
	const n, more = 30, 10
	for i := range n + more {
		_, err := q.Enqueue(ctx, fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	var held []*queue.Item
	for range n {
		it, err := q.Dequeue(ctx)
		require.NoError(t, err)
		held = append(held, it)
	}
	for _, it := range held {
		require.NoError(t, it.Ack(ctx))
	}
	for range more {
		it, err := q.Dequeue(ctx)
		require.NoError(t, err)
		require.NoError(t, it.Ack(ctx))
	}
	resp, err := cli.Get(ctx, prefix+"claims/", clientv3.WithPrefix())
	require.NoError(t, err)
	var marked []string
	for _, kv := range resp.Kvs {
		marked = append(marked, string(kv.Key))
	}
	assert.LessOrEqual(t, len(marked), 1, "claim keys left behind: %v", marked)
}
