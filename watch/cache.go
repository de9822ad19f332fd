package watch

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Change is one key's change as a Cache applied it. Old is nil when the key was added,
// New is nil when it was removed. Revision is the store revision the Cache reached with
// the change.
type Change struct {
	Key      string
	Old, New *KV
	Revision int64
}

// Cache holds every key under a prefix in memory, kept current by a watch. Reads never
// call etcd.
type Cache struct {
	s      *stream
	prefix string
	cancel context.CancelFunc
	exited chan struct{}
	ready  chan struct{}

	mu   sync.RWMutex
	kvs  map[string]KV
	keys []string // sorted
	rev  int64

	subMu  sync.Mutex
	subs   atomic.Pointer[[]*subscriber]
	err    error
	closer sync.Once
	// gid is the id of the goroutine that runs subscribers, so that Close can tell it
	// is called from one.
	gid atomic.Uint64
	// closed is set by Close: no subscriber is called after it.
	closed atomic.Bool
}

type subscriber struct {
	fn       func(Change)
	canceled atomic.Bool
}

// NewCache lists prefix and keeps the result current. WithStartRevision and WithPrefix
// do not apply; WithLogger and WithProgressInterval do.
func NewCache(cli *clientv3.Client, prefix string, opts ...Option) (*Cache, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if prefix == "" {
		return nil, fmt.Errorf("%w: empty prefix", ErrInvalidArgument)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	for _, w := range watcherOnly {
		if o.set&w.bit != 0 {
			return nil, fmt.Errorf("%w: %s: a Cache does not use it", ErrInvalidArgument, w.name)
		}
	}
	o.prefix, o.initialState, o.startRev, o.prevKV = true, true, 0, false
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		s:      newStream(cli, prefix, o),
		prefix: prefix,
		cancel: cancel,
		exited: make(chan struct{}),
		ready:  make(chan struct{}),
		kvs:    map[string]KV{},
	}
	c.subs.Store(&[]*subscriber{})
	if o.beforeStart != nil {
		o.beforeStart(c)
	}
	go c.run(ctx)
	return c, nil
}

func (c *Cache) run(ctx context.Context) {
	c.gid.Store(goid())
	defer close(c.exited)
	err := c.s.run(ctx, func(_ context.Context, batch []Event) bool {
		c.apply(batch)
		return true
	})
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// apply installs a batch under one write lock, so that readers see whole revisions, and
// then tells the subscribers.
func (c *Cache) apply(batch []Event) {
	var changes []Change
	c.mu.Lock()
	for i := range batch {
		ev := &batch[i]
		switch ev.Type {
		case Put:
			kv := ev.KV
			old, had := c.kvs[kv.Key]
			c.kvs[kv.Key] = kv
			if !had {
				c.insertKey(kv.Key)
				changes = append(changes, Change{Key: kv.Key, New: &kv, Revision: ev.Revision})
			} else {
				changes = append(changes, Change{Key: kv.Key, Old: &old, New: &kv, Revision: ev.Revision})
			}
		case Delete:
			old, had := c.kvs[ev.KV.Key]
			if had {
				delete(c.kvs, ev.KV.Key)
				c.removeKey(ev.KV.Key)
				changes = append(changes, Change{Key: ev.KV.Key, Old: &old, Revision: ev.Revision})
			}
		case Resync:
			changes = append(changes, c.replace(ev.State, ev.Revision)...)
		}
		c.rev = ev.Revision
	}
	c.mu.Unlock()
	select {
	case <-c.ready:
		c.notify(*c.subs.Load(), changes)
	default:
		c.becomeReady(changes)
	}
}

// becomeReady tells the subscribers the first listing and then closes Ready, so that
// every subscriber added before Ready closed has been told it. Subscribe and the close
// both hold subMu; a subscriber added while others are being told is told next.
// No callback runs under subMu, so callbacks may subscribe and cancel.
func (c *Cache) becomeReady(changes []Change) {
	told := map[*subscriber]bool{}
	for {
		c.subMu.Lock()
		var todo []*subscriber
		for _, s := range *c.subs.Load() {
			if !told[s] {
				told[s] = true
				todo = append(todo, s)
			}
		}
		if len(todo) == 0 {
			close(c.ready)
			c.subMu.Unlock()
			return
		}
		c.subMu.Unlock()
		if !c.notify(todo, changes) {
			return
		}
	}
}

// notify calls the subscribers with the changes, and stops as soon as the Cache is
// closed (a subscriber may close it); it reports whether it got through.
func (c *Cache) notify(subs []*subscriber, changes []Change) bool {
	for _, ch := range changes {
		for _, s := range subs {
			if c.closed.Load() {
				return false
			}
			if !s.canceled.Load() {
				s.fn(ch)
			}
		}
	}
	return true
}

// replace swaps in a full state and returns the difference from the old one.
func (c *Cache) replace(state []KV, rev int64) []Change {
	var changes []Change
	kvs := make(map[string]KV, len(state))
	keys := make([]string, 0, len(state))
	for _, kv := range state {
		kvs[kv.Key] = kv
		keys = append(keys, kv.Key)
		old, had := c.kvs[kv.Key]
		switch {
		case !had:
			changes = append(changes, Change{Key: kv.Key, New: &kv, Revision: rev})
		case old.ModRevision != kv.ModRevision || old.CreateRevision != kv.CreateRevision || !bytes.Equal(old.Value, kv.Value):
			changes = append(changes, Change{Key: kv.Key, Old: &old, New: &kv, Revision: rev})
		}
	}
	for _, k := range c.keys {
		if _, still := kvs[k]; !still {
			old := c.kvs[k]
			changes = append(changes, Change{Key: k, Old: &old, Revision: rev})
		}
	}
	sort.Strings(keys) // etcd lists in key order already; this keeps the invariant regardless
	c.kvs, c.keys = kvs, keys
	sort.Slice(changes, func(i, j int) bool { return changes[i].Key < changes[j].Key })
	return changes
}

func (c *Cache) insertKey(k string) {
	i := sort.SearchStrings(c.keys, k)
	c.keys = append(c.keys, "")
	copy(c.keys[i+1:], c.keys[i:])
	c.keys[i] = k
}

func (c *Cache) removeKey(k string) {
	i := sort.SearchStrings(c.keys, k)
	if i < len(c.keys) && c.keys[i] == k {
		c.keys = append(c.keys[:i], c.keys[i+1:]...)
	}
}

// Ready returns a channel closed once the first full list is in memory and every
// subscriber added before has been called with it. After Ready, a subscriber's view
// built from its calls equals List.
func (c *Cache) Ready() <-chan struct{} { return c.ready }

// WaitReady blocks until the Cache is ready, ctx ends, or the Cache stops.
func (c *Cache) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.exited:
		select {
		case <-c.ready:
			return nil
		default:
		}
		return c.Err()
	}
}

// Get returns the key's value as of Revision. It never calls etcd.
func (c *Cache) Get(key string) (KV, bool) {
	c.mu.RLock()
	kv, ok := c.kvs[key]
	c.mu.RUnlock()
	return kv, ok
}

// List returns every cached key that starts with prefix ("" for all), sorted by key. It
// never calls etcd.
func (c *Cache) List(prefix string) []KV {
	c.mu.RLock()
	defer c.mu.RUnlock()
	// Keys with the prefix form one run in the sorted keys: find both ends, then copy.
	lo := sort.SearchStrings(c.keys, prefix)
	rest := c.keys[lo:]
	n := sort.Search(len(rest), func(i int) bool { return !strings.HasPrefix(rest[i], prefix) })
	if n == 0 {
		return nil
	}
	out := make([]KV, n)
	for i, k := range rest[:n] {
		out[i] = c.kvs[k]
	}
	return out
}

// Len returns the number of cached keys.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.kvs)
}

// Revision returns the store revision the Cache reflects (0 before Ready).
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// Stale reports whether the Cache may be behind etcd: before Ready, while the watch is
// disconnected or re-listing, or when etcd has not confirmed it for a few progress
// intervals.
func (c *Cache) Stale() bool {
	select {
	case <-c.ready:
	default:
		return true
	}
	select {
	case <-c.exited:
		return true
	default:
	}
	return c.s.stale()
}

// Subscribe calls fn for every change the Cache applies, in revision order (the changes
// of a re-list in key order), on the Cache's goroutine, once the change is readable
// through Get and List. fn must not block and must not wait for Ready; it may call
// Subscribe, cancel, Get, List and Close.
//
// A subscriber added before Ready closes is called with the first listing as additions,
// and Ready closes only after those calls returned (see Ready). A subscriber added later
// is called for every change applied after Subscribe returns. Whether Ready has closed
// when Subscribe is called is a race with the first listing; to start from the full
// state either way, Subscribe, then WaitReady, then read List: a change fn is told
// may then already be in that List, and applying it again is harmless. After a compaction
// re-list, subscribers get exactly the differences between the old and the new state,
// never a "resync". After cancel returns, fn is not called again, except at most once
// if cancel races with a change being delivered.
func (c *Cache) Subscribe(fn func(Change)) (cancel func()) {
	if fn == nil {
		return func() {}
	}
	s := &subscriber{fn: fn}
	c.subMu.Lock()
	old := *c.subs.Load()
	next := append(append(make([]*subscriber, 0, len(old)+1), old...), s)
	c.subs.Store(&next)
	c.subMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.canceled.Store(true)
			c.subMu.Lock()
			defer c.subMu.Unlock()
			cur := *c.subs.Load()
			rest := make([]*subscriber, 0, len(cur))
			for _, x := range cur {
				if x != s {
					rest = append(rest, x)
				}
			}
			c.subs.Store(&rest)
		})
	}
}

// Err returns nil while the Cache runs, and after it stops why: ErrClosed after Close,
// or an error wrapping ErrClientClosed.
func (c *Cache) Err() error {
	select {
	case <-c.exited:
	default:
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.err
}

// Close stops the watch and waits for the Cache's goroutine. The cached state stays
// readable. It is idempotent and returns nil.
//
// Close may be called from a subscriber: it then returns without waiting for the
// Cache's goroutine (which is running that subscriber, and ends when it returns). No
// subscriber is called after Close, not even for the rest of a revision.
func (c *Cache) Close() error {
	c.closer.Do(func() {
		c.closed.Store(true)
		c.cancel()
	})
	if c.gid.Load() != goid() {
		<-c.exited
	}
	return nil
}

// goid returns the calling goroutine's id, from the first line of its stack trace
// ("goroutine 42 [running]:"). It is used only to recognise a subscriber calling Close.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}
