package ownership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// keepAlives is one LeaseKeepAlive stream on a connection, kept open for the renewals
// of one session (see renewStreams). etcd answers a stream's requests one at a time, in
// the order they came, or ends the stream: each reply answers the oldest request not
// yet answered. A request its renewal stops waiting for (answered elsewhere first, or
// too late) ends the stream: its reply, should it come, is never taken for a later
// request's, which was sent later; and the member behind it was slow or silent anyway.
// A retired stream carries no new request and ends once none waits on it.
type keepAlives struct {
	cancel context.CancelFunc
	stream pb.Lease_LeaseKeepAliveClient
	done   chan struct{} // closed when the receiving goroutine returns

	mu      sync.Mutex
	waiting []keepAliveCall // sent and not answered, oldest first
	err     error           // why the stream ended, once it has
	retired bool            // replaced: ends once no request waits on it
}

type keepAliveCall struct {
	lease int64
	reply chan keepAliveReply // capacity 1
}

type keepAliveReply struct {
	resp *pb.LeaseKeepAliveResponse
	err  error
}

var (
	// errStreamAbandoned ends a keep-alive stream on which a request was left unanswered.
	errStreamAbandoned = errors.New("keep-alive stream ended: a request on it went unanswered")
	// errStreamRetired ends a keep-alive stream replaced by a new one.
	errStreamRetired = errors.New("keep-alive stream ended: replaced")
)

// openKeepAlives opens a keep-alive stream on c, waiting no longer than ctx; the stream
// itself lives until end.
//
// A member without a leader refuses the stream at once instead of holding requests
// until it gives up forwarding them (WithRequireLeader), and so does a connection that
// cannot be made (no WaitForReady, unlike the client's requests: on a connection to
// one member it would hold the request until the renewal's deadline): the renewal goes
// on to the next member at once. A stream opened before its member lost the leader
// holds a request until etcd ends the stream (three election timeouts without a
// leader) or gives up forwarding it: the renewal goes on at its hedge.
func openKeepAlives(ctx context.Context, c *grpc.ClientConn) (*keepAlives, error) {
	sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	stop := context.AfterFunc(ctx, cancel) // until it is open
	stream, err := pb.NewLeaseClient(c).LeaseKeepAlive(sctx)
	if !stop() {
		cancel()
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, rpctypes.Error(err)
	}
	k := &keepAlives{cancel: cancel, stream: stream, done: make(chan struct{})}
	go k.receive()
	return k, nil
}

// receive hands each reply to the oldest request waiting, until the stream ends.
func (k *keepAlives) receive() {
	defer close(k.done)
	for {
		resp, err := k.stream.Recv()
		if err != nil {
			k.end(rpctypes.Error(err))
			return
		}
		k.mu.Lock()
		if len(k.waiting) == 0 || k.waiting[0].lease != resp.ID {
			k.mu.Unlock()
			k.end(fmt.Errorf("keep-alive reply for lease %x answers no request", resp.ID))
			return
		}
		call := k.waiting[0]
		k.waiting[0] = keepAliveCall{}
		k.waiting = k.waiting[1:]
		done := k.retired && len(k.waiting) == 0
		k.mu.Unlock()
		call.reply <- keepAliveReply{resp: resp}
		if done {
			k.end(errStreamRetired)
		}
	}
}

// retire takes the stream out of use: it carries no new request, and ends once the
// requests waiting on it are answered. A renewal that comes back to a member it has a
// request waiting at opens a new stream, but the request may still land in time: a
// slow member is not a silent one.
func (k *keepAlives) retire() {
	k.mu.Lock()
	k.retired = true
	done := len(k.waiting) == 0
	k.mu.Unlock()
	if done {
		k.end(errStreamRetired)
	}
}

// alive reports whether the stream can still carry requests.
func (k *keepAlives) alive() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err == nil && !k.retired
}

// end ends the stream, failing with err every request waiting on it; the first reason
// wins.
func (k *keepAlives) end(err error) {
	k.cancel() // first: a Send blocked under mu returns
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		return
	}
	k.err = err
	for _, c := range k.waiting {
		c.reply <- keepAliveReply{err: err}
	}
	k.waiting = nil
}

// renew sends one renewal of lease and waits for its reply until ctx ends, which ends
// the stream (see keepAlives). A lease etcd no longer has is
// rpctypes.ErrLeaseNotFound.
func (k *keepAlives) renew(ctx context.Context, lease clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // a request sent now would only end the stream
	}
	call := keepAliveCall{lease: int64(lease), reply: make(chan keepAliveReply, 1)}
	k.mu.Lock()
	if k.err != nil || k.retired {
		err := k.err
		if err == nil {
			err = errStreamRetired
		}
		k.mu.Unlock()
		return nil, err
	}
	// Sent and queued under one lock: the queue's order is the stream's.
	err := k.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(lease)})
	if err == nil {
		k.waiting = append(k.waiting, call)
	}
	k.mu.Unlock()
	if err != nil {
		if errors.Is(err, io.EOF) {
			// The stream ended: Recv, and so end, tells why.
			select {
			case <-k.done:
			case <-ctx.Done():
				k.end(errStreamAbandoned)
			}
		} else {
			k.end(rpctypes.Error(err))
		}
		k.mu.Lock()
		err = k.err
		k.mu.Unlock()
		return nil, err
	}
	var r keepAliveReply
	select {
	case r = <-call.reply:
	case <-ctx.Done():
		k.end(errStreamAbandoned)
		r = <-call.reply // end answered it, unless its reply came first
		if r.err != nil {
			return nil, ctx.Err()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.resp.TTL <= 0 {
		return nil, rpctypes.ErrLeaseNotFound
	}
	return &clientv3.LeaseKeepAliveResponse{ResponseHeader: r.resp.GetHeader(), ID: clientv3.LeaseID(r.resp.ID), TTL: r.resp.TTL}, nil
}

// renewStreams are the keep-alive streams of one session, one per connection its
// renewals go through (renewConns), each opened by its first renewal there and kept
// while it answers: with a user name and password, the session authenticates once per
// stream, not once per renewal. A session has at most one request waiting on a stream
// but while a renewal comes back to a member (see keepAlives), so no session's renewal
// ever waits behind another's, nor is failed by another's.
type renewStreams struct {
	conns *renewConns

	mu      sync.Mutex
	streams map[string]*keepAlives // by endpoint, or clientConnKey
	closed  bool
}

func newRenewStreams(conns *renewConns) *renewStreams {
	return &renewStreams{conns: conns, streams: map[string]*keepAlives{}}
}

// keepAliveOnce renews lease once through ep ("": the client's connection), as
// clientv3's KeepAliveOnce does through the client's connection: a lease etcd no
// longer has is rpctypes.ErrLeaseNotFound. The stream to ep is opened when first asked
// for, after the last one ended, or when fresh: a renewal that comes back to a member
// it has a request waiting at does not queue behind it, where a stream the member
// stopped answering would hold it too; that request may still be answered (a slow
// member is not a silent one), and its stream ends after it. The open waits no longer
// than ctx.
func (rs *renewStreams) keepAliveOnce(ctx context.Context, ep string, lease clientv3.LeaseID, fresh bool) (*clientv3.LeaseKeepAliveResponse, error) {
	k, err := rs.stream(ctx, ep, fresh)
	if err != nil {
		return nil, err
	}
	return k.renew(ctx, lease)
}

func (rs *renewStreams) stream(ctx context.Context, ep string, fresh bool) (*keepAlives, error) {
	if ep == "" {
		ep = clientConnKey(rs.conns.cli.Endpoints())
	}
	rs.mu.Lock()
	if rs.closed {
		rs.mu.Unlock()
		return nil, ErrClosed
	}
	k := rs.streams[ep]
	if k != nil && k.alive() && !fresh {
		rs.mu.Unlock()
		return k, nil
	}
	delete(rs.streams, ep)
	rs.mu.Unlock()
	if k != nil {
		k.retire() // ends after the request waiting on it, if any
	}
	c, err := rs.conns.conn(ep)
	if err != nil {
		return nil, err
	}
	k, err = openKeepAlives(ctx, c)
	if err != nil {
		return nil, err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed || !slices.Contains(rs.conns.listed(), ep) {
		k.end(ErrClosed)
		return nil, ErrClosed
	}
	if old := rs.streams[ep]; old != nil {
		old.retire() // opened by a hedge of the same renewal meanwhile
	}
	rs.streams[ep] = k
	return k, nil
}

// prune ends the streams that ended or that go to an endpoint the client no longer
// lists (and the one on the client's connection once it has other endpoints), after
// every renewal.
func (rs *renewStreams) prune() {
	listed := rs.conns.listed()
	var ended []*keepAlives
	rs.mu.Lock()
	for e, k := range rs.streams {
		if !slices.Contains(listed, e) || !k.alive() {
			ended = append(ended, k)
			delete(rs.streams, e)
		}
	}
	rs.mu.Unlock()
	for _, k := range ended {
		k.end(ErrClosed)
	}
}

// close ends the streams and waits for their goroutines; later renewals fail with
// ErrClosed.
func (rs *renewStreams) close() {
	rs.mu.Lock()
	streams := rs.streams
	rs.streams, rs.closed = nil, true
	rs.mu.Unlock()
	for _, k := range streams {
		k.end(ErrClosed)
		<-k.done
	}
}
