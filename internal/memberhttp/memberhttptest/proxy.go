// Package memberhttptest has what tests of member connections share: a TCP proxy in
// front of a member that counts the connections a client makes and leaves open.
package memberhttptest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections to a member and counts them, so that a test can tell
// how many connections a client made and how many it left open. It stops, closing
// every connection, when the test ends.
type Proxy struct {
	// Addr is the proxy's host:port.
	Addr string
	// Accepted counts the connections accepted (those refused while Down excepted).
	Accepted atomic.Int64
	// Open counts the connections forwarding now.
	Open atomic.Int64
	// Down refuses (closes at once) new connections while set.
	Down atomic.Bool

	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	hold   chan struct{} // non-nil: new connections wait for it to close before forwarding
}

// NewProxy starts a proxy to target (host:port) on a loopback port.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		p.Release()
		p.Drop()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.Down.Load() {
				c.Close()
				continue
			}
			p.Accepted.Add(1)
			p.mu.Lock()
			hold := p.hold
			p.conns[c] = struct{}{}
			p.mu.Unlock()
			wg.Go(func() { p.forward(c, hold) })
		}
	})
	return p
}

func (p *Proxy) forward(c net.Conn, hold chan struct{}) {
	if hold != nil {
		<-hold
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		p.untrack(c)
		return
	}
	p.Open.Add(1)
	defer p.Open.Add(-1)
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	var pipes sync.WaitGroup
	pipes.Go(func() { io.Copy(up, c); up.Close(); c.Close() })
	pipes.Go(func() { io.Copy(c, up); up.Close(); c.Close() })
	pipes.Wait()
	p.untrack(c, up)
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// Drop closes every connection in flight, as a member that stops does.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Hold makes connections accepted from now on wait, counted in Accepted but not yet
// forwarded, until Release: a request through one is in flight until then.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold == nil {
		p.hold = make(chan struct{})
	}
}

// Release forwards the connections held since Hold, and those accepted from now on.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold != nil {
		close(p.hold)
		p.hold = nil
	}
}
