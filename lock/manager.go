package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

// Manager hands out many named locks under one prefix, all bound to one shared lease.
// LockAll takes several at once in a fixed (sorted) order, so two callers that lock
// overlapping sets never deadlock.
type Manager struct {
	holder *ownership.Holder
	prefix string

	mu     sync.Mutex
	closed bool
	mus    map[*Mutex]struct{}
}

// NewManager returns a Manager of locks under prefix. It does not block.
func NewManager(cli *clientv3.Client, prefix string, opts ...Option) (*Manager, error) {
	if err := checkArgs(cli, prefix); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Manager{
		holder: ownership.NewHolder(cli, o.ttl, o.session, o.logger),
		prefix: dirOf(prefix), mus: map[*Mutex]struct{}{},
	}, nil
}

// Mutex returns a new participant on the named lock, sharing the Manager's lease.
// Closing it releases the lock but not the lease.
func (m *Manager) Mutex(name string) (*Mutex, error) {
	if strings.Trim(name, "/") == "" {
		return nil, fmt.Errorf("%w: empty lock name", ErrInvalidArgument)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	mu := newMutex(m.holder, m.prefix+strings.Trim(name, "/"), false)
	m.mus[mu] = struct{}{}
	mu.onClose = func() {
		m.mu.Lock()
		delete(m.mus, mu)
		m.mu.Unlock()
	}
	return mu, nil
}

// Lock takes the named lock.
func (m *Manager) Lock(ctx context.Context, name string) (*Mutex, error) {
	mu, err := m.Mutex(name)
	if err != nil {
		return nil, err
	}
	if err := mu.Lock(ctx); err != nil {
		_ = mu.Close()
		return nil, err
	}
	return mu, nil
}

// LockAll takes every named lock, in sorted order whatever the order given, and returns
// them in that sorted order. If one fails it releases those it got and returns the
// error; that release waits at most a third of the TTL (at least 1s) for etcd, and what
// it could not release is released in the background.
func (m *Manager) LockAll(ctx context.Context, names ...string) ([]*Mutex, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no lock names", ErrInvalidArgument)
	}
	sorted := slices.Clone(names)
	for i, n := range sorted {
		sorted[i] = strings.Trim(n, "/")
	}
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var got []*Mutex
	for _, n := range sorted {
		mu, err := m.Lock(ctx, n)
		if err != nil {
			// Bounded: a lock whose release does not finish in time is released in the
			// background by Close (see UnlockAll).
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.holder.CleanupTimeout())
			if uerr := m.UnlockAll(uctx, got); uerr != nil {
				err = errors.Join(err, uerr)
			}
			cancel()
			return nil, fmt.Errorf("lock %q: %w", n, err)
		}
		got = append(got, mu)
	}
	return got, nil
}

// UnlockAll unlocks the given locks in reverse order and closes them. It returns the
// errors joined; a lock that was already lost reports ErrNotHeld. A lock whose Unlock
// fails (ctx ended, etcd unreachable) is still given up by its Close: its key is deleted
// in the background, until the delete lands or the lease is gone.
func (m *Manager) UnlockAll(ctx context.Context, mus []*Mutex) error {
	var errs []error
	for i := len(mus) - 1; i >= 0; i-- {
		if err := mus[i].Unlock(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	closeAll(mus)
	return errors.Join(errs...)
}

// closeAll closes mus all at once: each Close of a lock still held waits for etcd (at
// most a third of the TTL) to delete its key, so that one after another they would
// wait that long per lock while etcd does not answer.
func closeAll(mus []*Mutex) {
	var wg sync.WaitGroup
	for _, mu := range mus {
		wg.Go(func() { _ = mu.Close() })
	}
	wg.Wait()
}

// Close releases every lock handed out and, unless WithSession was given, revokes the
// shared lease. Idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var mus []*Mutex
	for mu := range m.mus {
		mus = append(mus, mu)
	}
	m.mu.Unlock()
	closeAll(mus)
	return m.holder.Close()
}
