package ownership

import (
	"context"
	"slices"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// renewConns are a session's own connections to its client's endpoints, one per
// endpoint it has used, that carry its renewals.
//
// On the client's own connection, requests take the endpoints in turn, the
// application's and the session's alike. A renewal a second there shifts which member
// the application's next request goes to, and while a member is silent it can keep an
// application that retries every second on that member for the whole silence: its
// requests and the session's together come round to the silent member at every retry.
// On connections of its own the session adds no turn to the client's: it sends each
// renewal to the member that answered the last one, and a hedge to the next member
// in the client's list, so two requests of one renewal never go to the same member
// while there are others.
//
// The connections are made by the client's Dial (its credentials, auth token and dial
// options), when first used: while every renewal is answered, one. They are closed when
// the session's tracker stops.
type renewConns struct {
	cli *clientv3.Client

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	last   string // the endpoint that answered the last renewal
	closed bool
}

func newRenewConns(cli *clientv3.Client) *renewConns {
	return &renewConns{cli: cli, conns: map[string]*grpc.ClientConn{}}
}

// endpoint returns the endpoint of a renewal's i-th request: the one that answered the
// last renewal (or the client's first), then those after it in the client's list.
func (r *renewConns) endpoint(i int) string {
	eps := r.cli.Endpoints()
	if len(eps) == 0 {
		return ""
	}
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	first := max(slices.Index(eps, last), 0)
	return eps[(first+i)%len(eps)]
}

// answered records that ep answered a renewal: the next one goes there first.
func (r *renewConns) answered(ep string) {
	r.mu.Lock()
	r.last = ep
	r.mu.Unlock()
}

// conn returns the connection to ep, made when first asked for.
func (r *renewConns) conn(ep string) (*grpc.ClientConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if c := r.conns[ep]; c != nil {
		return c, nil
	}
	c, err := r.cli.Dial(ep)
	if err != nil {
		return nil, err
	}
	r.conns[ep] = c
	return c, nil
}

// keepAliveOnce renews lease once through ep, as clientv3's KeepAliveOnce does through
// the client's connection: a lease etcd no longer has is rpctypes.ErrLeaseNotFound.
func (r *renewConns) keepAliveOnce(ctx context.Context, ep string, lease clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	c, err := r.conn(ep)
	if err != nil {
		return nil, err
	}
	// A member without a leader refuses at once instead of holding the request until it
	// gives up forwarding it, and so does a connection that cannot be made (no
	// WaitForReady, unlike the client's requests: on a connection to one member it
	// would hold the request until the renewal's deadline): the renewal goes on to the
	// next member.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel() // ends the stream
	stream, err := pb.NewLeaseClient(c).LeaseKeepAlive(ctx)
	if err != nil {
		return nil, rpctypes.Error(err)
	}
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(lease)}); err != nil {
		return nil, rpctypes.Error(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, rpctypes.Error(err)
	}
	if resp.TTL <= 0 {
		return nil, rpctypes.ErrLeaseNotFound
	}
	return &clientv3.LeaseKeepAliveResponse{ResponseHeader: resp.GetHeader(), ID: clientv3.LeaseID(resp.ID), TTL: resp.TTL}, nil
}

// close closes the connections; later renewals fail with ErrClosed.
func (r *renewConns) close() {
	r.mu.Lock()
	conns := r.conns
	r.conns, r.closed = nil, true
	r.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
