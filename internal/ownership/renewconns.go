package ownership

import (
	"slices"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// renewConns are the connections, one per endpoint used, that carry the renewals of
// the sessions of one client, shared by them all: however many sessions (a lock or a
// lease each), at most one connection to each of the client's endpoints.
//
// On the client's own connection, requests take the endpoints in turn, the
// application's and the sessions' alike. A renewal a second there shifts which member
// the application's next request goes to, and while a member is silent it can keep an
// application that retries every second on that member for the whole silence: its
// requests and the session's together come round to the silent member at every retry.
// On connections of their own the sessions add no turn to the client's: each renewal
// goes to the member that answered the last one, and its hedges to the members after
// it in the client's list, so a renewal's requests go to every member before one goes
// to any a second time (each renewal takes the order once: see order). A client of one
// endpoint has no member to choose and no turn to take from anyone: its sessions renew
// on its own connection (Session.renew), so that a connection that stops carrying the
// application's requests costs the lease, as it costs etcd's own keep-alive, and
// another owner takes over.
//
// The connections are made by the client's Dial (its credentials, auth token and dial
// options), when first used: while every renewal is answered, one. On each, a session's
// renewals go on a keep-alive stream of the session's own (see renewStreams), as do
// those of a client of one endpoint on its own connection. A connection to an
// endpoint no longer in the client's list (SetEndpoints) is closed at the next
// renewal, and all of them when the tracker of the client's last session stops.
type renewConns struct {
	cli  *clientv3.Client
	refs int // sessions whose tracker runs, under renewMu

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	last   string // the endpoint that answered the last renewal
	closed bool
}

var (
	renewMu   sync.Mutex
	renewPool = map[*clientv3.Client]*renewConns{}
)

// renewConnsOf returns the renewal connections of cli's sessions; release them when
// the session's tracker stops.
func renewConnsOf(cli *clientv3.Client) *renewConns {
	renewMu.Lock()
	defer renewMu.Unlock()
	r := renewPool[cli]
	if r == nil {
		r = &renewConns{cli: cli, conns: map[string]*grpc.ClientConn{}}
		renewPool[cli] = r
	}
	r.refs++
	return r
}

// release gives up one session's use of r, closing the connections after the last.
func (r *renewConns) release() {
	renewMu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(renewPool, r.cli)
	}
	renewMu.Unlock()
	if last {
		r.close()
	}
}

// order returns the endpoints a renewal's requests go to, in turn: the one that
// answered the last renewal (or the client's first), then those after it in the
// client's list. A renewal takes it once: another session's renewal answered meanwhile
// moves the first endpoint, and read again, the order could send two of one renewal's
// requests to one member while another was not tried.
func (r *renewConns) order() []string {
	eps := r.cli.Endpoints()
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	first := max(slices.Index(eps, last), 0)
	return append(eps[first:len(eps):len(eps)], eps[:first]...)
}

// answered records that ep answered a renewal: the next one goes there first.
func (r *renewConns) answered(ep string) {
	r.mu.Lock()
	r.last = ep
	r.mu.Unlock()
}

// prune closes the connections to endpoints no longer in the client's list, after
// every renewal, answered or not; a request in flight on one (another session's) ends,
// and its renewal goes on to the next member.
func (r *renewConns) prune() {
	eps := r.cli.Endpoints()
	var gone []*grpc.ClientConn
	r.mu.Lock()
	for e, c := range r.conns {
		if !slices.Contains(eps, e) {
			gone = append(gone, c)
			delete(r.conns, e)
		}
	}
	r.mu.Unlock()
	for _, c := range gone {
		_ = c.Close()
	}
}

// clientConnPrefix starts the key of a stream on the client's own connection.
const clientConnPrefix = "client connection to "

// clientConnKey is the key of the stream on the client's own connection while the client
// has endpoints eps: a stream opened before SetEndpoints is not used after, and is
// ended by the next prune, so that renewals follow the client to its new endpoint.
func clientConnKey(eps []string) string { return clientConnPrefix + strings.Join(eps, ",") }

// conn returns the connection to ep, made when first asked for; a clientConnKey is the
// client's own connection.
func (r *renewConns) conn(ep string) (*grpc.ClientConn, error) {
	if strings.HasPrefix(ep, clientConnPrefix) {
		return r.cli.ActiveConnection(), nil
	}
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

// listed is what the keys of streams may be: the client's endpoints, or the key of its
// own connection while it has one endpoint.
func (r *renewConns) listed() []string {
	eps := r.cli.Endpoints()
	if len(eps) == 1 {
		return []string{clientConnKey(eps)}
	}
	return eps
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
