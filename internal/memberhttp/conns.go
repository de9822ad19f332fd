package memberhttp

import (
	"context"
	"errors"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// Conns keeps one gRPC connection per member between rounds of requests, so that a
// round does not pay for a TCP and HTTP/2 handshake per member (etcd's client dials one
// per Status call). A connection is dropped when a request through it fails (the next
// round dials afresh, so a member that comes back is reached at once rather than after
// gRPC's reconnection backoff), when its member's endpoint changes or the member leaves
// (Keep), and they all close with Close, or with the client that dialled them.
type Conns struct {
	cli  *clientv3.Client
	stop func() bool // the close-with-the-client hook

	mu     sync.Mutex
	byID   map[uint64]*Conn
	closed bool
}

// Conn is a member's connection, in use from Get to Release.
type Conn struct {
	conns    *Conns
	id       uint64
	endpoint string
	conn     *grpc.ClientConn
	users    int  // requests using it; under conns.mu
	retired  bool // out of byID: closed by its last user
}

// NewConns returns Conns that dial through cli and close when cli does.
func NewConns(cli *clientv3.Client) *Conns {
	c := &Conns{cli: cli, byID: map[uint64]*Conn{}, stop: func() bool { return false }}
	if cli != nil {
		c.stop = context.AfterFunc(cli.Ctx(), func() { c.drop(all, true) })
	}
	return c
}

// ClientConn is the connection to make requests on until Release.
func (mc *Conn) ClientConn() *grpc.ClientConn { return mc.conn }

// Get returns the connection to member id at endpoint, dialling one when there is none
// usable (fresh). After Close it dials one that Release closes.
func (c *Conns) Get(id uint64, endpoint string) (mc *Conn, fresh bool, err error) {
	c.mu.Lock()
	if mc = c.byID[id]; mc != nil && mc.endpoint == endpoint && usable(mc.conn) {
		mc.users++
		c.mu.Unlock()
		return mc, false, nil
	}
	c.mu.Unlock()
	conn, err := c.cli.Dial(endpoint)
	if err != nil {
		return nil, false, err
	}
	mc = &Conn{conns: c, id: id, endpoint: endpoint, conn: conn, users: 1}
	c.mu.Lock()
	var old *Conn
	switch cur := c.byID[id]; {
	case c.closed:
		mc.retired = true
	case cur == nil || cur.endpoint != endpoint || !usable(cur.conn):
		// None yet, the endpoint changed, or the connection broke.
		if cur != nil && cur.retire() {
			old = cur
		}
		c.byID[id] = mc
	default:
		// A concurrent request dialled first: use that one, and close ours.
		cur.users++
		c.mu.Unlock()
		conn.Close()
		return cur, true, nil
	}
	c.mu.Unlock()
	if old != nil {
		old.conn.Close()
	}
	return mc, true, nil
}

// Release ends a request's use of mc; failed drops it, so that the next Get dials
// afresh. The last user of a dropped connection closes it.
func (mc *Conn) Release(failed bool) {
	c := mc.conns
	c.mu.Lock()
	mc.users--
	if failed && !mc.retired && c.byID[mc.id] == mc {
		delete(c.byID, mc.id)
		mc.retired = true
	}
	last := mc.retired && mc.users == 0
	c.mu.Unlock()
	if last {
		mc.conn.Close()
	}
}

// retire marks mc as dropped and reports whether no request uses it, in which case
// the caller closes it. Under Conns.mu.
func (mc *Conn) retire() bool {
	mc.retired = true
	return mc.users == 0
}

// Keep drops the connections of members not in ids (those that left the cluster):
// closed at once when idle, else by their last user.
func (c *Conns) Keep(ids []uint64) {
	keep := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		keep[id] = true
	}
	c.drop(func(id uint64) bool { return !keep[id] }, false)
}

// Close closes every connection not in use, and those in use when their request ends;
// after it nothing is kept. It is idempotent.
func (c *Conns) Close() error {
	c.stop()
	return c.drop(all, true)
}

func all(uint64) bool { return true }

func (c *Conns) drop(gone func(id uint64) bool, closing bool) error {
	var idle []*Conn
	c.mu.Lock()
	c.closed = c.closed || closing
	for id, mc := range c.byID {
		if gone(id) {
			delete(c.byID, id)
			if mc.retire() {
				idle = append(idle, mc)
			}
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
