package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/queue"
)

// claims records every claim the consumers get, to check that no item is ever held by
// two live claims, and every successful Ack.
type claims struct {
	mu         sync.Mutex
	holder     map[string]*queue.Item // the last claim of each item, nil once finished
	overlaps   []string
	acks       map[string]int
	log        map[string][]string
	waiters    map[string]chan struct{}
	redelivery int
}

func (c *claims) claimed(it *queue.Item) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.holder[it.ID()]; prev != nil && !now.After(prev.Deadline()) {
		c.overlaps = append(c.overlaps, fmt.Sprintf("%s claimed at %v while the previous claim lives until %v",
			it.ID(), now.Format(time.StampMicro), prev.Deadline().Format(time.StampMicro)))
	}
	c.holder[it.ID()] = it
	if w := c.waiters[it.ID()]; w != nil {
		close(w)
		delete(c.waiters, it.ID())
	}
	c.log[it.ID()] = append(c.log[it.ID()], fmt.Sprintf("claimed %v until %v", now.Format(time.StampMicro), it.Deadline().Format(time.StampMicro)))
	if it.Deliveries() > 1 {
		c.redelivery++
	}
}

// next returns a channel closed when the item is claimed again.
func (c *claims) next(id string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := make(chan struct{})
	c.waiters[id] = w
	return w
}

func (c *claims) finished(it *queue.Item, acked bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holder[it.ID()] == it {
		c.holder[it.ID()] = nil
	}
	if acked {
		c.acks[it.ID()]++
	}
	c.log[it.ID()] = append(c.log[it.ID()], fmt.Sprintf("finished %v acked %v", time.Now().Format(time.StampMicro), acked))
}

// TestFaultManyConsumers runs 400 items through 5 consumers on a 3-node cluster while
// two consumers crash holding an item, one is cut off from etcd holding an item, and
// the etcd leader is stopped and restarted. Every item must be acknowledged exactly once,
// none lost, and no item ever held by two live claims.
//
// The faults happen at the same points of the run whatever the number of items: each
// consumer gets about items/5 of them; the crashes come at its 15% and 50%, the cut-off
// at its 20%, the leader stops at 30% of the items acknowledged and restarts at 45%.
func TestFaultManyConsumers(t *testing.T) {
	// Parallel with the package's tests that wait on timers; the only parallel test that
	// starts a cluster (the etcd test framework allows one at a time).
	t.Parallel()
	const (
		items       = 400
		perConsumer = items / 5
		visibility  = 2 * time.Second
	)
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 9*time.Minute)
	prefix := etcdtest.Prefix(t)
	rec := &claims{holder: map[string]*queue.Item{}, acks: map[string]int{}, log: map[string][]string{}, waiters: map[string]chan struct{}{}}
	var acked atomic.Int64
	done, stop := context.WithCancel(ctx)
	defer stop()

	// The producer retries with the same ID until Enqueue succeeds, so an Enqueue lost
	// in the leader restart neither loses nor duplicates an item.
	// Member 2's bridge carries only consumer 2, the one cut off; the others know
	// members 0 and 1, as production clients know several members.
	others := func() *clientv3.Client { return clientOf(t, c, 0, 1) }
	prod, err := queue.New(others(), prefix, queue.WithVisibilityTimeout(visibility))
	require.NoError(t, err)
	defer prod.Close()
	var enqueued atomic.Int64
	// pause spaces out retries of a call that failed at once (no leader yet).
	pause := func() {
		select {
		case <-done.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	enqueue := func(i int) {
		for done.Err() == nil {
			octx, cancel := context.WithTimeout(done, 2*time.Second)
			_, err := prod.Enqueue(octx, fmt.Appendf(nil, "%d", i), queue.WithID(fmt.Sprintf("item-%04d", i)))
			cancel()
			if err == nil {
				enqueued.Add(1)
				return
			}
			pause()
		}
	}
	// Most items are queued before the consumers start, so that they always find work
	// (consumers that keep emptying the queue spend the run waking up for each item);
	// the rest while the leader is stopped and restarted.
	const early = items * 7 / 10
	begin := time.Now()
	for i := range early {
		enqueue(i)
	}
	t.Logf("%v: %d items queued", time.Since(begin), early)
	leaderStopped := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	wg.Go(func() {
		select {
		case <-leaderStopped:
		case <-done.Done():
		}
		for i := early; i < items; i++ {
			enqueue(i)
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-done.Done():
				return
			case <-time.After(5 * time.Second):
				t.Logf("progress: %d enqueued, %d acked", enqueued.Load(), acked.Load())
			}
		}
	})

	// fate decides what a consumer does with its nth item: process it, crash holding it,
	// or be cut off from etcd while holding it.
	type fate int
	const (
		work fate = iota
		crash
		cutOff
	)
	// ack retries an Ack whose outcome is unknown: the answer is definitive once etcd is
	// reached.
	ack := func(it *queue.Item) error {
		for {
			actx, cancel := context.WithTimeout(done, time.Second)
			err := it.Ack(actx)
			cancel()
			if err == nil || errors.Is(err, queue.ErrClaimLost) || done.Err() != nil {
				return err
			}
			pause()
		}
	}
	consume := func(cli *clientv3.Client, fateOf func(n int) fate, member int) {
		q, err := queue.New(cli, prefix, queue.WithVisibilityTimeout(visibility))
		if err != nil {
			t.Error(err)
			return
		}
		for n := 1; done.Err() == nil; n++ {
			dctx, cancel := context.WithTimeout(done, 3*time.Second)
			it, err := q.Dequeue(dctx)
			cancel()
			if err != nil {
				continue
			}
			rec.claimed(it)
			switch fateOf(n) {
			case crash:
				// A crash: no Ack, no Close, the client gone with its claim.
				cli.Close()
				return
			case cutOff:
				// Cut off from etcd while working on the item, for as long as it takes
				// another consumer to get it; then this consumer's Ack must fail.
				again := rec.next(it.ID())
				c.Blackhole(member)
				select {
				case <-again:
				case <-done.Done():
				}
				c.Unblackhole(member)
				err := ack(it)
				if !errors.Is(err, queue.ErrClaimLost) && done.Err() == nil {
					t.Errorf("Ack of %s by a consumer whose claim expired: %v, want ErrClaimLost", it.ID(), err)
				}
				rec.finished(it, err == nil)
				if err == nil {
					acked.Add(1)
				}
				continue
			}
			err = ack(it)
			rec.finished(it, err == nil)
			if err != nil {
				t.Logf("ack %s: %v", it.ID(), err)
			}
			if err == nil {
				acked.Add(1)
			}
		}
		_ = q.Close()
	}
	always := func(int) fate { return work }
	crashAt := func(k int) func(int) fate {
		return func(n int) fate {
			if n == k {
				return crash
			}
			return work
		}
	}
	start := time.Now()
	wg.Go(func() { consume(others(), always, -1) })
	wg.Go(func() { consume(others(), always, -1) })
	wg.Go(func() {
		consume(c.Client(2), func(n int) fate {
			if n == perConsumer/5 {
				return cutOff
			}
			return work
		}, 2)
	})
	// Two consumers crash mid-item; each is replaced, as a supervisor would.
	for _, k := range []int{perConsumer * 15 / 100, perConsumer / 2} {
		wg.Go(func() {
			consume(others(), crashAt(k), -1)
			consume(others(), always, -1)
		})
	}

	// Restart the leader in the middle of the run. The waits fail if the consumers
	// stall (no Ack for a minute, far beyond the visibility timeout and a leader
	// election), not after a fixed time: how fast they go depends on the machine.
	progressed := func(cond func() bool) {
		t.Helper()
		last, at := acked.Load(), time.Now()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for !cond() {
			select {
			case <-tick.C:
			case <-ctx.Done():
				t.Fatalf("%d acked when the test ran out of time", acked.Load())
			}
			if n := acked.Load(); n != last {
				last, at = n, time.Now()
			} else if time.Since(at) > time.Minute {
				t.Fatalf("stalled: %d acked, none for a minute", n)
			}
		}
	}
	waitAcked := func(n int64) { progressed(func() bool { return acked.Load() >= n }) }
	waitAcked(items * 30 / 100)
	t.Logf("%v: %d acked, stopping the leader", time.Since(start), acked.Load())
	stopped := c.StopLeader()
	close(leaderStopped)
	waitAcked(items * 45 / 100)
	t.Logf("%v: %d acked, restarting it", time.Since(start), acked.Load())
	c.RestartMember(stopped)
	t.Logf("%v: restarted", time.Since(start))

	check, err := queue.New(others(), prefix)
	require.NoError(t, err)
	defer check.Close()
	progressed(func() bool { return acked.Load() >= items })
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		n, err := check.Len(ctx)
		assert.NoError(ct, err)
		assert.Zero(ct, n)
	}, 30*time.Second, 50*time.Millisecond)
	t.Logf("%v: all acked", time.Since(start))
	stop()
	wg.Wait()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Empty(t, rec.overlaps, "items held by two live claims")
	for i := range items {
		id := fmt.Sprintf("item-%04d", i)
		if rec.acks[id] == 0 {
			t.Errorf("%s never acknowledged: %v", id, rec.log[id])
		}
	}
	for id, n := range rec.acks {
		assert.Equal(t, 1, n, "acks of %s", id)
	}
	assert.GreaterOrEqual(t, rec.redelivery, 3, "the items of the crashed and cut-off consumers are delivered again")
	t.Logf("%d items, %d redeliveries", items, rec.redelivery)
}

// clientOf returns a client of the given members, closed when the test ends.
func clientOf(t *testing.T, c *etcdtest.Cluster, members ...int) *clientv3.Client {
	var eps []string
	for _, i := range members {
		eps = append(eps, c.Members[i].GRPCURL)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Errorf("client: %v", err)
		return nil
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
