package barrier

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// member is a participant's lease: granted on first use, kept alive by a
// concurrency.Session, watched so that Done closes when it is lost.
type member struct {
	cli *clientv3.Client
	ttl time.Duration

	mu     sync.Mutex
	s      *concurrency.Session
	cancel context.CancelFunc
	err    error
	done   chan struct{}
	wg     sync.WaitGroup
}

func newMember(cli *clientv3.Client, ttl time.Duration) *member {
	return &member{cli: cli, ttl: ttl, done: make(chan struct{})}
}

// session returns the live session, granting its lease (bounded by ctx) on first use.
func (m *member) session(ctx context.Context) (*concurrency.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	if m.s != nil {
		return m.s, nil
	}
	resp, err := m.cli.Grant(ctx, int64((m.ttl+time.Second-1)/time.Second))
	if err != nil {
		return nil, err
	}
	// The keep-alives live as long as the member, not as long as this call.
	kctx, cancel := context.WithCancel(context.Background())
	s, err := concurrency.NewSession(m.cli, concurrency.WithLease(resp.ID), concurrency.WithContext(kctx))
	if err != nil {
		cancel()
		m.revoke(resp.ID)
		return nil, err
	}
	m.s, m.cancel = s, cancel
	m.wg.Go(func() {
		<-s.Done()
		m.mu.Lock()
		if m.err == nil {
			m.err = ErrLost
			close(m.done)
		}
		m.mu.Unlock()
	})
	return s, nil
}

func (m *member) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = m.cli.Revoke(ctx, id)
}

// failed reports the member's error, if it is lost or closed.
func (m *member) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *member) Done() <-chan struct{} { return m.done }

func (m *member) Err() error {
	select {
	case <-m.done:
		return m.failed()
	default:
		return nil
	}
}

// close revokes the lease (waiting at most two seconds for etcd) and stops the
// keep-alives. It is idempotent.
func (m *member) close() {
	m.mu.Lock()
	if m.err == nil {
		m.err = ErrClosed
		close(m.done)
	}
	s, cancel := m.s, m.cancel
	m.s, m.cancel = nil, nil
	m.mu.Unlock()
	if s != nil {
		m.revoke(s.Lease())
		s.Orphan() // stops the keep-alives and waits for them
		cancel()
	}
	m.wg.Wait()
}
