package memberhttp

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// shared holds the Conns of each client with users, so that a cluster's health checks
// and metric probes reach each member over one connection rather than one each (when
// they reach it at one endpoint).
var shared = struct {
	sync.Mutex
	byClient map[*clientv3.Client]*share
}{byClient: map[*clientv3.Client]*share{}}

type share struct {
	conns *Conns
	users int
	stop  func() bool // the forget-with-the-client hook
}

// Share is one user's use of the Conns every user of a client shares: its Gets reach
// each member at the endpoint it last asked for, over one connection with every other
// user that asks for that endpoint, and leave alone the connections of users that ask
// for other endpoints of the member. After Close its requests go through closed Conns of its own (each dials
// a connection that closes when it ends), so that it keeps no connection while others
// still share: Close drops the connections to endpoints no other user asks for.
type Share struct {
	cli    *clientv3.Client
	sh     *share
	user   atomic.Pointer[user]
	closed sync.Once
	err    error
}

// ConnsOf returns a share of the Conns every user of cli shares: the last share to close
// closes them. Closing cli closes them too, and the next ConnsOf of it starts afresh.
func ConnsOf(cli *clientv3.Client) *Share {
	s := &Share{cli: cli}
	if cli == nil {
		s.user.Store(NewConns(nil).own)
		return s
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
	s.sh = sh
	s.user.Store(sh.conns.join())
	return s
}

// Get is Conns.Get on the shared Conns as this share's user, or after Close on closed
// Conns of its own.
func (s *Share) Get(id uint64, endpoint string) (*Conn, bool, error) {
	return s.user.Load().get(id, endpoint)
}

// Keep is Conns.Keep on the shared Conns (nothing after Close).
func (s *Share) Keep(ids []uint64) { s.user.Load().c.Keep(ids) }

// Close ends this share: the connections that only it asks for are dropped, and the
// last share closes the shared Conns. It is idempotent.
func (s *Share) Close() error {
	s.closed.Do(func() {
		own := NewConns(s.cli)
		own.Close()
		old := s.user.Swap(own.own)
		if s.sh == nil {
			s.err = old.c.Close()
			return
		}
		s.err = errors.Join(old.leave(), s.sh.release(s.cli))
	})
	return s.err
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
