package memberhttp

import (
	"net/http"
	"sync"
)

// Clients asks members' HTTP endpoints over kept-alive connections until Close: through
// a client given, or one on a transport of its own (NewTransport), and through a copy
// of it that dials unix sockets (UnixClient).
type Clients struct {
	tcp, unix *http.Client
	own       bool // tcp's transport is ours, closed with us

	mu     sync.Mutex
	closed bool
}

// NewClients returns Clients that send requests through hc, or, when hc is nil, through
// a client on a transport of their own.
func NewClients(hc *http.Client) *Clients {
	own := hc == nil
	if own {
		hc = &http.Client{Transport: NewTransport(nil)}
	}
	return &Clients{tcp: hc, unix: UnixClient(hc), own: own}
}

// Do sends req, through the unix-socket client when unix is set, passes the response
// to read and closes its body; the connection is kept for the next request when read
// consumed the body. After Close it is closed instead, also when Close came while the
// request was in flight: http.Transport forgets a CloseIdleConnections as soon as it
// is asked for another connection, so whoever learns last that the Clients are closed
// closes what went idle.
func (c *Clients) Do(req *http.Request, unix bool, read func(*http.Response) error) error {
	hc := c.tcp
	if unix {
		hc = c.unix
	}
	req.Close = req.Close || c.isClosed()
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	err = read(resp)
	resp.Body.Close()
	if !req.Close && c.isClosed() {
		c.closeIdle()
	}
	return err
}

func (c *Clients) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the idle connections of the transports that are the Clients' own (all
// but those of a client given to NewClients), and those of requests in flight as each
// ends; requests after it keep no connection. It is idempotent.
func (c *Clients) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.closeIdle()
}

func (c *Clients) closeIdle() {
	if c.own {
		c.tcp.CloseIdleConnections()
	}
	c.unix.CloseIdleConnections()
}
