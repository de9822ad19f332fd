package memberhttp

import (
	"context"
	"errors"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// Conns keeps gRPC connections to members between rounds of requests, so that a round
// does not pay for a TCP and HTTP/2 handshake per member (etcd's client dials one per
// Status call). It keeps one connection per member and endpoint that a user asks for:
// each user (the Conns' own Get, and each Share of Conns that users share) reaches a
// member at the endpoint it last asked for, users that ask for one endpoint share its
// connection, and users that ask for different endpoints of one member keep one each,
// rather than each redialling the member in turn.
//
// A connection is dropped when a request through it fails (the next round dials afresh,
// so that a member that comes back is reached at once rather than after gRPC's
// reconnection backoff), when no user asks for its endpoint any more (each moved to
// another endpoint of the member, or ended its Share), and when its member leaves
// (Keep); they all close with Close, or with the client that dialled them. A dropped
// connection closes at once when idle, else when its last request ends.
type Conns struct {
	cli  *clientv3.Client
	stop func() bool // the close-with-the-client hook
	own  *user       // the user that Conns.Get asks for

	mu     sync.Mutex
	conns  map[key]*Conn
	wanted map[key]int // how many users last asked for the member at this endpoint
	users  map[*user]struct{}
	closed bool
}

// key names a connection: a member and the endpoint it is reached at.
type key struct {
	id       uint64
	endpoint string
}

// user is one user of Conns: the endpoint at which it last asked for each member.
type user struct {
	c     *Conns
	asked map[uint64]string // under c.mu
	left  bool              // asks no more (its Share ended); under c.mu
}

// Conn is a connection to a member, in use from Get to Release.
type Conn struct {
	conns   *Conns
	key     key
	conn    *grpc.ClientConn
	users   int  // requests using it; under conns.mu
	retired bool // out of conns: closed by its last user
}

// NewConns returns Conns that dial through cli and close when cli does.
func NewConns(cli *clientv3.Client) *Conns {
	c := &Conns{cli: cli, conns: map[key]*Conn{}, wanted: map[key]int{}, users: map[*user]struct{}{},
		stop: func() bool { return false }}
	c.own = c.join()
	if cli != nil {
		c.stop = context.AfterFunc(cli.Ctx(), func() { c.drop(all, true) })
	}
	return c
}

// ClientConn is the connection to make requests on until Release.
func (mc *Conn) ClientConn() *grpc.ClientConn { return mc.conn }

// Get returns the connection to member id at endpoint, dialling one when there is none
// usable (fresh). Asking for another endpoint of the member than the last Get did drops
// the connection to the former one. After Close it dials one that Release closes.
func (c *Conns) Get(id uint64, endpoint string) (mc *Conn, fresh bool, err error) {
	return c.own.get(id, endpoint)
}

// join adds a user.
func (c *Conns) join() *user {
	u := &user{c: c, asked: map[uint64]string{}}
	c.mu.Lock()
	c.users[u] = struct{}{}
	c.mu.Unlock()
	return u
}

func (u *user) get(id uint64, endpoint string) (mc *Conn, fresh bool, err error) {
	c, k := u.c, key{id, endpoint}
	c.mu.Lock()
	stale := u.ask(k)
	if mc = c.conns[k]; mc != nil && usable(mc.conn) {
		mc.users++
		c.mu.Unlock()
		stale.close()
		return mc, false, nil
	}
	c.mu.Unlock()
	stale.close()
	conn, err := c.cli.Dial(endpoint)
	if err != nil {
		return nil, false, err
	}
	mc = &Conn{conns: c, key: k, conn: conn, users: 1}
	c.mu.Lock()
	var old *Conn
	switch cur := c.conns[k]; {
	case c.closed || c.wanted[k] == 0:
		// Closed, or nobody asks for the endpoint any more (its member left, or the
		// user moved on or ended, while we dialled): not kept.
		mc.retired = true
	case cur == nil || !usable(cur.conn):
		// None yet, or the connection broke.
		if cur != nil && cur.retire() {
			old = cur
		}
		c.conns[k] = mc
	default:
		// A concurrent request dialled first: use that one, and close ours.
		cur.users++
		c.mu.Unlock()
		conn.Close()
		return cur, true, nil
	}
	c.mu.Unlock()
	old.close()
	return mc, true, nil
}

// ask records that u reaches member k.id at k.endpoint. When that leaves the endpoint it
// asked for before without users, the connection to it is dropped, and returned when
// idle for the caller to close. Under c.mu.
func (u *user) ask(k key) *Conn {
	c := u.c
	if c.closed || u.left {
		return nil
	}
	prev, ok := u.asked[k.id]
	if ok && prev == k.endpoint {
		return nil
	}
	u.asked[k.id] = k.endpoint
	c.wanted[k]++
	if !ok {
		return nil
	}
	return c.unwant(key{k.id, prev})
}

// leave ends u's asking: the connections to endpoints no other user asks for are
// dropped, closed at once when idle, else by their last user.
func (u *user) leave() error {
	c := u.c
	var idle []*Conn
	c.mu.Lock()
	u.left = true
	delete(c.users, u)
	for id, endpoint := range u.asked {
		if mc := c.unwant(key{id, endpoint}); mc != nil {
			idle = append(idle, mc)
		}
	}
	clear(u.asked)
	c.mu.Unlock()
	return closeAll(idle)
}

// unwant counts one user fewer asking for k; when none is left, the connection to it is
// dropped, and returned when idle for the caller to close. Under c.mu.
func (c *Conns) unwant(k key) *Conn {
	n := c.wanted[k] - 1
	if n > 0 {
		c.wanted[k] = n
		return nil
	}
	delete(c.wanted, k)
	mc := c.conns[k]
	if mc == nil {
		return nil
	}
	delete(c.conns, k)
	if mc.retire() {
		return mc
	}
	return nil
}

// Release ends a request's use of mc; failed drops it, so that the next Get dials
// afresh. The last user of a dropped connection closes it.
func (mc *Conn) Release(failed bool) {
	c := mc.conns
	c.mu.Lock()
	mc.users--
	if failed && !mc.retired && c.conns[mc.key] == mc {
		delete(c.conns, mc.key)
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

// close closes a connection that retire reported idle; nil is none.
func (mc *Conn) close() {
	if mc != nil {
		mc.conn.Close()
	}
}

// Keep drops the connections of members not in ids (those that left the cluster), at
// every endpoint: closed at once when idle, else by their last user. Users forget the
// endpoints they asked for those members.
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
	for k, mc := range c.conns {
		if gone(k.id) {
			delete(c.conns, k)
			if mc.retire() {
				idle = append(idle, mc)
			}
		}
	}
	for k := range c.wanted {
		if gone(k.id) {
			delete(c.wanted, k)
		}
	}
	for u := range c.users {
		for id := range u.asked {
			if gone(id) {
				delete(u.asked, id)
			}
		}
	}
	c.mu.Unlock()
	return closeAll(idle)
}

func closeAll(idle []*Conn) error {
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
