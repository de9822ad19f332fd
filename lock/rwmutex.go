package lock

import (
	"context"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// RWMutex is a distributed readers-writer lock with writer preference: any number of
// readers share it, a writer holds it alone, and a reader that arrives while a writer
// waits queues behind that writer, so writers are never starved. An RWMutex value is
// one participant holding — or acquiring — either a read or a write lock at a time: a
// call for the other side meanwhile returns ErrBusy.
type RWMutex struct {
	reader *ownership.Claim
	writer *ownership.Claim
	holder *ownership.Holder

	mu        sync.Mutex
	acquiring bool             // an acquisition of either side is in progress
	last      *ownership.Claim // the side of the current or last holding
}

// NewRWMutex returns an RWMutex on key. Like New it does not block.
func NewRWMutex(cli *clientv3.Client, key string, opts ...Option) (*RWMutex, error) {
	if err := checkArgs(cli, key); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	h := ownership.NewHolder(cli, o.ttl, o.session, o.logger)
	dir, v := dirOf(key), vocab(key)
	return &RWMutex{
		reader: ownership.NewClaim(h, dir+"r/", "", ownership.ReadWrite(dir, false), v),
		writer: ownership.NewClaim(h, dir+"w/", "", ownership.ReadWrite(dir, true), v),
		holder: h,
	}, nil
}

// acquire takes side o (one side at a time: the value is one participant).
func (rw *RWMutex) acquire(ctx context.Context, o, other *ownership.Claim, wait bool) error {
	rw.mu.Lock()
	if rw.acquiring || other.Held() {
		rw.mu.Unlock()
		return ErrBusy
	}
	rw.acquiring = true
	rw.mu.Unlock()
	err := o.Acquire(ctx, wait)
	rw.mu.Lock()
	rw.acquiring = false
	if err == nil {
		rw.last = o
	}
	rw.mu.Unlock()
	return err
}

// RLock blocks until we hold a read lock: when no writer holds or waits ahead of us.
func (rw *RWMutex) RLock(ctx context.Context) error {
	return rw.acquire(ctx, rw.reader, rw.writer, true)
}

// TryRLock takes a read lock if no writer holds or waits, else returns a *HeldError.
func (rw *RWMutex) TryRLock(ctx context.Context) error {
	return rw.acquire(ctx, rw.reader, rw.writer, false)
}

// RUnlock releases the read lock (ErrNotHeld when not held).
func (rw *RWMutex) RUnlock(ctx context.Context) error { return rw.reader.Release(ctx) }

// Lock blocks until we hold the write lock: when no reader or writer is ahead of us.
func (rw *RWMutex) Lock(ctx context.Context) error {
	return rw.acquire(ctx, rw.writer, rw.reader, true)
}

// TryLock takes the write lock if nobody holds or waits for the lock, else returns a
// *HeldError.
func (rw *RWMutex) TryLock(ctx context.Context) error {
	return rw.acquire(ctx, rw.writer, rw.reader, false)
}

// Unlock releases the write lock (ErrNotHeld when not held).
func (rw *RWMutex) Unlock(ctx context.Context) error { return rw.writer.Release(ctx) }

// current returns the side of the current or last holding (the reader before any).
func (rw *RWMutex) current() *ownership.Claim {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.last == nil {
		return rw.reader
	}
	return rw.last
}

// Token returns the fencing token of the held read or write lock, 0 when none.
func (rw *RWMutex) Token() int64 { return rw.current().Token() }

// OwnerCmp returns a comparison that holds only while we hold the write lock.
func (rw *RWMutex) OwnerCmp() clientv3.Cmp { return rw.writer.Cmp() }

// Done returns a channel closed when the current read or write holding ends.
func (rw *RWMutex) Done() <-chan struct{} { return rw.current().Done() }

// Err returns why the current or last holding was lost, or nil.
func (rw *RWMutex) Err() error { return rw.current().Err() }

// Close releases what is held and, unless WithSession was given, revokes the lease.
func (rw *RWMutex) Close() error {
	rw.reader.Close()
	rw.writer.Close()
	return rw.holder.Close()
}
