package ownership

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// createdWatches counts the Watch streams of a client on which etcd confirmed a watch (a
// created response came back): all of them, and those opened since it was armed.
type createdWatches struct {
	armed   atomic.Bool
	created atomic.Int64 // streams on which a watch was confirmed
	opened  atomic.Int64 // streams opened while armed
	fresh   atomic.Int64 // of those, the ones on which a watch was confirmed
}

func (cw *createdWatches) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || method != "/etcdserverpb.Watch/Watch" {
		return cs, err
	}
	fresh := cw.armed.Load()
	if fresh {
		cw.opened.Add(1)
	}
	return &createdStream{ClientStream: cs, cw: cw, fresh: fresh}, nil
}

type createdStream struct {
	grpc.ClientStream
	cw    *createdWatches
	fresh bool
	seen  atomic.Bool
}

func (s *createdStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if wr, ok := m.(*pb.WatchResponse); err == nil && ok && wr.Created && s.seen.CompareAndSwap(false, true) {
		s.cw.created.Add(1)
		if s.fresh {
			s.cw.fresh.Add(1)
		}
	}
	return err
}

// A holding, and a waiter, whose watch was given up because the member it went through
// fell silent watch again through a member that answers, although their client knows
// just that member and a healthy one, sends nothing but their own requests, and takes
// its endpoints in turn: a read that ends on the healthy member — the one that answers —
// leaves the silent one next, so that a watch made right after it would go there again,
// every time, and the holding and the waiter would learn of a delete only at the read
// after the next watch given up. The watch's creation is hedged: a watch etcd has not
// confirmed after CallTimeout is made again on a stream of its own, opened through the
// next endpoint. Then the holding learns that another client deleted its key, and the
// waiter that the holder released, as etcd applies it.
func TestReopenedWatchAvoidsSilentMember(t *testing.T) {
	// CallTimeout 1s. The watch of each is given up about three CallTimeouts after
	// member 1 fell silent; the read that follows is hedged after one, then two more;
	// the watch that follows after one, then two, four more (each try is given up after
	// two, three at most), and the read is made again when all are given up.
	const ttl = 6 * time.Second
	const bound = 12 * time.Second
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 180*time.Second)
	pfx := etcdtest.Prefix(t)
	v := testVocab()

	// A holding, its key watched through member 1 alone.
	var hw createdWatches
	hcli := pinnedClient(t, c, grpc.WithChainStreamInterceptor(hw.intercept))
	holder := NewHolder(hcli, ttl, nil, nil)
	defer holder.Close()
	hs, closeHoldings := watchedHoldings(t, ctx, holder, pfx+"h", 1)
	defer closeHoldings()

	// A waiter behind a holder of another client, watching through member 1 alone.
	dir := pfx + "w/"
	other := NewHolder(c.Client(0), ttl, nil, nil)
	defer other.Close()
	owner := NewClaim(other, dir, "", Predecessor(dir), v)
	defer owner.Close()
	require.NoError(t, owner.Acquire(ctx, false))
	var ww createdWatches
	wcli := pinnedClient(t, c, grpc.WithChainStreamInterceptor(ww.intercept))
	wholder := NewHolder(wcli, ttl, nil, nil)
	defer wholder.Close()
	waiter := NewClaim(wholder, dir, "", Predecessor(dir), v)
	defer waiter.Close()
	acquired := make(chan error, 1)
	go func() { acquired <- waiter.Acquire(ctx, true) }()
	defer func() { waiter.Close(); <-acquired }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Positive(ct, hw.created.Load(), "the holding watches through member 1")
		assert.Positive(ct, ww.created.Load(), "the waiter watches through member 1")
	}, 10*time.Second, 10*time.Millisecond)

	// Both clients learn of member 2, then member 1 falls silent.
	wcli.SetEndpoints(c.Members[1].GRPCURL, c.Members[2].GRPCURL)
	defer silenceMember1(t, ctx, c, hcli, c.Client(2), pfx)()
	hw.armed.Store(true)
	ww.armed.Store(true)

	// Both watch again through member 2 while member 1 is still silent.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Positive(ct, hw.fresh.Load(), "watch streams of the holding's client confirmed since member 1 fell silent, of %d opened", hw.opened.Load())
		assert.Positive(ct, ww.fresh.Load(), "watch streams of the waiter's client confirmed since member 1 fell silent, of %d opened", ww.opened.Load())
	}, 3*bound, 50*time.Millisecond, "the holding and the waiter watch through a member that answers")

	// Another client deletes the holding's key; the owner releases.
	_, err := c.Client(0).Delete(ctx, hs[0].Key())
	require.NoError(t, err)
	require.NoError(t, owner.Release(ctx))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		select {
		case <-hs[0].Done():
			assert.ErrorIs(ct, hs[0].Err(), ErrKeyLost, "the holding")
		default:
			assert.Fail(ct, "the holding still lasts")
		}
	}, 3*bound, 50*time.Millisecond)
	select {
	case err := <-acquired:
		assert.NoError(t, err, "the waiter's Acquire")
		acquired <- err // for the deferred wait
	case <-time.After(3 * bound):
		assert.Fail(t, "the waiter did not acquire")
	}
}
