package health

import (
	"context"
	"errors"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// conns keeps one gRPC connection per member between checks, so that a check does not
// pay for a TCP and HTTP/2 handshake per member (etcd's client dials one per Status
// call). A connection is dropped when a request through it fails (the next check dials
// afresh, so a member that comes back is seen at once rather than after gRPC's
// reconnection backoff) or its member's endpoint changes, and they all close with
// close, or with the client that dialled them.
type conns struct {
	cli  *clientv3.Client
	stop func() bool // the close-with-the-client hook

	mu     sync.Mutex
	byID   map[ID]*memberConn
	closed bool
}

type memberConn struct {
	endpoint string
	conn     *grpc.ClientConn
	users    int  // requests using it; under conns.mu
	retired  bool // out of byID: closed by its last user
}

func newConns(cli *clientv3.Client) *conns {
	c := &conns{cli: cli, byID: map[ID]*memberConn{}, stop: func() bool { return false }}
	if cli != nil {
		c.stop = context.AfterFunc(cli.Ctx(), func() { c.close() })
	}
	return c
}

// get returns m's connection, dialling one when there is none usable. After close it
// dials one that put closes.
func (c *conns) get(m Member) (*memberConn, error) {
	c.mu.Lock()
	if mc := c.byID[m.ID]; mc != nil && mc.endpoint == m.Endpoint && usable(mc.conn) {
		mc.users++
		c.mu.Unlock()
		return mc, nil
	}
	c.mu.Unlock()
	conn, err := c.cli.Dial(m.Endpoint)
	if err != nil {
		return nil, err
	}
	mc := &memberConn{endpoint: m.Endpoint, conn: conn, users: 1}
	c.mu.Lock()
	var old *memberConn
	switch cur := c.byID[m.ID]; {
	case c.closed:
		mc.retired = true
	case cur == nil || cur.endpoint != m.Endpoint || !usable(cur.conn):
		if cur != nil {
			cur.retired = true
			if cur.users == 0 {
				old = cur
			}
		}
		c.byID[m.ID] = mc
	default: // a concurrent check dialled first
		cur.users++
		c.mu.Unlock()
		conn.Close()
		return cur, nil
	}
	c.mu.Unlock()
	if old != nil {
		old.conn.Close()
	}
	return mc, nil
}

// put ends a request's use of mc; failed drops it. The last user of a dropped
// connection closes it.
func (c *conns) put(id ID, mc *memberConn, failed bool) {
	c.mu.Lock()
	mc.users--
	if failed && !mc.retired && c.byID[id] == mc {
		delete(c.byID, id)
		mc.retired = true
	}
	last := mc.retired && mc.users == 0
	c.mu.Unlock()
	if last {
		mc.conn.Close()
	}
}

// forget drops the connections of members not in keep.
func (c *conns) forget(keep []Member) {
	ids := make(map[ID]bool, len(keep))
	for _, m := range keep {
		ids[m.ID] = true
	}
	var idle []*memberConn
	c.mu.Lock()
	for id, mc := range c.byID {
		if !ids[id] {
			delete(c.byID, id)
			if mc.retired = true; mc.users == 0 {
				idle = append(idle, mc)
			}
		}
	}
	c.mu.Unlock()
	for _, mc := range idle {
		mc.conn.Close()
	}
}

// close closes every connection not in use, and those in use when their request ends.
func (c *conns) close() error {
	c.stop()
	var idle []*memberConn
	c.mu.Lock()
	c.closed = true
	for id, mc := range c.byID {
		delete(c.byID, id)
		if mc.retired = true; mc.users == 0 {
			idle = append(idle, mc)
		}
	}
	c.mu.Unlock()
	var errs []error
	for _, mc := range idle {
		errs = append(errs, mc.conn.Close())
	}
	return errors.Join(errs...)
}

// usable reports whether a kept connection is worth a request: not one that lost its
// member and waits out gRPC's reconnection backoff.
func usable(conn *grpc.ClientConn) bool {
	s := conn.GetState()
	return s != connectivity.TransientFailure && s != connectivity.Shutdown
}
