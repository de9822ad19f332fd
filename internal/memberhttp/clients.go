package memberhttp

import (
	"net/http"
	"net/url"
	"sync"
)

// Clients asks members' HTTP endpoints over kept-alive connections until Close: through
// a client given, or one on a transport of its own (NewTransport), and through a copy
// of it that dials unix sockets (UnixClient).
//
// Each member (each host requests go to) has a transport of its own, a copy of the
// client's, so that the connections of a member that leaves (Keep) close at once rather
// than idle until IdleConnTimeout. A given client whose transport is not an
// *http.Transport (a wrapper, say) cannot be copied: TCP requests go through it, and
// its connections stay the caller's to close; unix-socket ones go through a copy of
// the transport it wraps, as UnixClient says.
type Clients struct {
	base *http.Client    // the client given, or one on a transport of ours
	tcp  *http.Transport // what members' TCP transports copy; nil: they all use base's

	mu      sync.Mutex
	members map[target]*member
	closed  bool
}

// target is a member's endpoint as requests name it: the URL's host (host:port, or the
// socket's name), and whether it is a unix socket.
type target struct {
	host string
	unix bool
}

// member is the client of one target, in use by users requests.
type member struct {
	hc      *http.Client
	own     bool // hc's transport is ours: its idle connections are closed when dropped
	users   int  // under Clients.mu
	retired bool // out of members: closed by its last user
}

// NewClients returns Clients that send requests through hc, or, when hc is nil, through
// clients on transports of their own.
func NewClients(hc *http.Client) *Clients {
	c := &Clients{base: hc, members: map[target]*member{}}
	switch {
	case hc == nil:
		c.base = &http.Client{}
		c.tcp = NewTransport(nil)
	case hc.Transport == nil:
		if tr, ok := http.DefaultTransport.(*http.Transport); ok {
			c.tcp = tr
		}
	default:
		c.tcp, _ = hc.Transport.(*http.Transport)
	}
	return c
}

func (c *Clients) newMember(unix bool) *member {
	if unix {
		return &member{hc: UnixClient(c.base), own: true}
	}
	if c.tcp == nil {
		return &member{hc: c.base}
	}
	hc := *c.base
	hc.Transport = c.tcp.Clone()
	return &member{hc: &hc, own: true}
}

// Do sends req, through the unix-socket client when unix is set, passes the response
// to read and closes its body; the connection is kept for the next request when read
// consumed the body. After Close, or when its member was dropped (Keep) while the
// request was in flight, it is closed instead: http.Transport forgets a
// CloseIdleConnections as soon as it is asked for another connection, so the last
// request to end on a dropped member's transport closes what went idle.
func (c *Clients) Do(req *http.Request, unix bool, read func(*http.Response) error) error {
	m, closed := c.get(target{req.URL.Host, unix})
	defer c.release(m)
	req.Close = req.Close || closed
	resp, err := m.hc.Do(req)
	if err != nil {
		return err
	}
	err = read(resp)
	resp.Body.Close()
	return err
}

// get returns the client of t, made when there is none; after Close, one that is not
// kept (closed reports so).
func (c *Clients) get(t target) (m *member, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m = c.members[t]; m == nil {
		m = c.newMember(t.unix)
		if c.closed {
			m.retired = true
		} else {
			c.members[t] = m
		}
	}
	m.users++
	return m, c.closed
}

func (c *Clients) release(m *member) {
	c.mu.Lock()
	m.users--
	last := m.retired && m.users == 0
	c.mu.Unlock()
	if last {
		m.closeIdle()
	}
}

func (m *member) closeIdle() {
	if m.own {
		m.hc.CloseIdleConnections()
	}
}

// Keep drops the clients of members not among urls (those that left the cluster): the
// URLs the requests to the members that stay go to (only their hosts count). A dropped
// member's idle connections are closed at once, and those of its requests in flight as
// each ends.
func (c *Clients) Keep(urls []string) {
	keep := make(map[string]bool, len(urls))
	for _, u := range urls {
		if pu, err := url.Parse(u); err == nil {
			keep[pu.Host] = true
		}
	}
	c.drop(func(t target) bool { return !keep[t.host] }, false)
}

// Close closes the idle connections of the transports that are the Clients' own (all
// but those of a given client's transport that cannot be copied), and those of
// requests in flight as each ends; requests after it keep no connection. It is
// idempotent.
func (c *Clients) Close() {
	c.drop(func(target) bool { return true }, true)
}

func (c *Clients) drop(gone func(target) bool, closing bool) {
	var dropped []*member
	c.mu.Lock()
	c.closed = c.closed || closing
	for t, m := range c.members {
		if gone(t) {
			delete(c.members, t)
			m.retired = true
			dropped = append(dropped, m)
		}
	}
	c.mu.Unlock()
	// Those in use too: their idle connections now, the rest as their requests end.
	for _, m := range dropped {
		m.closeIdle()
	}
}
