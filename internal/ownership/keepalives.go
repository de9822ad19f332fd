package ownership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// keepAlives is one LeaseKeepAlive stream on a connection, shared by the renewals of a
// client's sessions through it, as etcd's own keep-alive shares one stream among a
// client's leases. A stream opened is a stream authenticated: with a user name and
// password, clientv3 authenticates again before every stream it opens, and etcd checks
// the password with bcrypt, so a stream per renewal would cost the server a password
// check per renewal.
//
// etcd answers a stream's requests one at a time, in the order they came, or ends the
// stream: each reply answers the oldest request not yet answered. A request its renewal
// stops waiting for (answered elsewhere first, or too late) ends the stream: its reply
// would otherwise be taken for that of a later request of the same lease, which was
// sent later, and the member behind it was slow or silent anyway. The requests waiting
// on a stream that ends fail, and their renewals go on to the next member; the next
// renewal through the connection opens a new stream.
type keepAlives struct {
	cancel context.CancelFunc
	stream pb.Lease_LeaseKeepAliveClient
	done   chan struct{} // closed when the receiving goroutine returns

	mu      sync.Mutex
	waiting []keepAliveCall // sent and not answered, oldest first
	err     error           // why the stream ended, once it has
}

type keepAliveCall struct {
	lease int64
	reply chan keepAliveReply // capacity 1
}

type keepAliveReply struct {
	resp *pb.LeaseKeepAliveResponse
	err  error
}

// errStreamAbandoned ends a keep-alive stream on which a request was left unanswered.
var errStreamAbandoned = errors.New("keep-alive stream ended: a request on it went unanswered")

// openKeepAlives opens a keep-alive stream on c, waiting no longer than ctx; the stream
// itself lives until end.
//
// A member without a leader refuses the stream at once instead of holding requests
// until it gives up forwarding them (WithRequireLeader), and etcd ends the stream when
// its member loses the leader; so does a connection that cannot be made (no
// WaitForReady, unlike the client's requests: on a connection to one member it would
// hold the request until the renewal's deadline). The renewal then goes on to the next
// member.
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
		k.mu.Unlock()
		call.reply <- keepAliveReply{resp: resp}
	}
}

// alive reports whether the stream can still carry requests.
func (k *keepAlives) alive() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err == nil
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
	call := keepAliveCall{lease: int64(lease), reply: make(chan keepAliveReply, 1)}
	k.mu.Lock()
	if k.err != nil {
		err := k.err
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
