package memberhttp

import (
	"context"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// shared holds the Conns of each client with users, so that a cluster's health checks
// and metric probes reach each member over one connection rather than one each.
var shared = struct {
	sync.Mutex
	byClient map[*clientv3.Client]*share
}{byClient: map[*clientv3.Client]*share{}}

type share struct {
	conns *Conns
	users int
	stop  func() bool // the forget-with-the-client hook
}

// ConnsOf returns the Conns every user of cli shares, and the function that ends this
// user's share (idempotent): the last one to end it closes them. Closing cli closes
// them too, and the next ConnsOf of it starts afresh.
func ConnsOf(cli *clientv3.Client) (*Conns, func() error) {
	if cli == nil {
		c := NewConns(nil)
		return c, c.Close
	}
	shared.Lock()
	sh := shared.byClient[cli]
	if sh == nil {
		sh = &share{conns: NewConns(cli)}
		shared.byClient[cli] = sh
		sh.stop = context.AfterFunc(cli.Ctx(), func() { sh.forget(cli) })
	}
	sh.users++
	shared.Unlock()
	var once sync.Once
	return sh.conns, func() (err error) {
		once.Do(func() { err = sh.release(cli) })
		return err
	}
}

// release ends one user's share; the last user closes the Conns.
func (sh *share) release(cli *clientv3.Client) error {
	shared.Lock()
	sh.users--
	last := sh.users == 0
	if last && shared.byClient[cli] == sh {
		delete(shared.byClient, cli)
	}
	shared.Unlock()
	if !last {
		return nil
	}
	sh.stop()
	return sh.conns.Close()
}

// forget drops a closed client's entry; its Conns close through their own hook.
func (sh *share) forget(cli *clientv3.Client) {
	shared.Lock()
	if shared.byClient[cli] == sh {
		delete(shared.byClient, cli)
	}
	shared.Unlock()
}

// ClosedConns returns Conns of cli that are closed: each request through them dials a
// connection that closes when it ends. A user whose share ended (ConnsOf) makes its
// requests through these, so that it keeps no connection while others still share.
func ClosedConns(cli *clientv3.Client) *Conns {
	c := NewConns(cli)
	c.Close()
	return c
}
