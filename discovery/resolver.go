package discovery

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/watch"
)

// EventType says what happened to an instance.
type EventType int

const (
	// Added: a new instance was registered.
	Added EventType = iota + 1
	// Updated: a registered instance's value changed (for example it was drained).
	Updated
	// Removed: an instance left (deregistered, or its lease expired).
	Removed
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Removed:
		return "removed"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is a change to one instance of a watched service. For Removed, Instance is the
// last known value.
type Event struct {
	Type     EventType
	Instance Instance
}

// Resolver keeps every instance under a prefix in memory, from a list+watch cache that
// resumes after disconnects and re-lists after compaction. Discover and Balancer picks
// read that memory and never call etcd.
//
// Its memory is bounded by what etcd holds: looking up a service that has no instance
// stores nothing.
type Resolver struct {
	prefix string
	cache  *watch.Cache
	log    *zap.Logger

	// snaps holds the immutable snapshot of every service with at least one instance,
	// once the first listing is merged; a service that is not there has none.
	snaps  sync.Map      // name → *snapshot
	gen    atomic.Uint64 // counts changes to snaps, each after it is made
	loaded atomic.Bool

	mu      sync.Mutex                  // serialises updates to the index and the subscriber lists
	entries map[string]map[string]entry // service → ID → entry; no empty inner maps once loaded
	ready   chan struct{}               // closed when loaded, after every service is published
	nextSub int
	subs    map[string]map[int]*subscriber // service → subscribers
	closed  bool

	unsubscribe func()
	stop        chan struct{}
	wg          sync.WaitGroup
	closeOnce   sync.Once
	closeErr    error
}

// entry is what the index knows about one key; deleted entries are kept (as tombstones)
// only until the first listing has been merged.
type entry struct {
	rev     int64
	inst    Instance
	present bool
}

// snapshot is one service's instances at one moment.
type snapshot struct {
	instances []Instance // sorted by ID; never modified
}

var emptySnapshot = &snapshot{}

// NewResolver starts watching every service under prefix. Use WaitReady to wait for the
// first listing. Close stops the watch. Of the options, only WithLogger applies.
func NewResolver(cli *clientv3.Client, prefix string, opts ...Option) (*Resolver, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if prefix == "" || prefix == "/" {
		return nil, fmt.Errorf("%w: empty prefix", ErrInvalidArgument)
	}
	o, err := buildOptions(opts, resolverUse)
	if err != nil {
		return nil, err
	}
	r := &Resolver{
		prefix:  normPrefix(prefix),
		log:     o.logger,
		entries: map[string]map[string]entry{},
		subs:    map[string]map[int]*subscriber{},
		ready:   make(chan struct{}),
		stop:    make(chan struct{}),
	}
	cache, err := watch.NewCache(cli, r.prefix, watch.WithLogger(o.logger))
	if err != nil {
		return nil, err
	}
	r.cache = cache
	r.unsubscribe = cache.Subscribe(r.onChange)
	r.wg.Add(1)
	go r.loadWhenReady()
	return r, nil
}

// loadWhenReady merges the cache's first listing into the index. Changes delivered to
// onChange before that (the cache hands the first listing to subscribers too, possibly
// before this runs) are kept by revision, so whichever arrives first, the newer wins.
// Every service is published here, whatever was merged by whom.
func (r *Resolver) loadWhenReady() {
	defer r.wg.Done()
	select {
	case <-r.cache.Ready():
	case <-r.stop:
		return
	}
	kvs := r.cache.List("")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	type change struct {
		svc string
		ev  Event
	}
	var changes []change
	for _, kv := range kvs {
		if svc, ev := r.applyLocked(kv.Key, kv.ModRevision, &kv); svc != "" {
			changes = append(changes, change{svc, ev})
		}
	}
	for svc, ids := range r.entries {
		for id, e := range ids {
			if !e.present {
				delete(ids, id)
			}
		}
		if len(ids) == 0 {
			delete(r.entries, svc)
			continue
		}
		r.snaps.Store(svc, r.buildLocked(svc))
	}
	r.gen.Add(1)
	r.loaded.Store(true)
	close(r.ready)
	// Events after what they announce is served: a reader of one finds it in Discover.
	for _, c := range changes {
		r.notifyLocked(c.svc, c.ev)
	}
	for _, subs := range r.subs {
		for _, sub := range subs {
			sub.wake()
		}
	}
}

func (r *Resolver) onChange(c watch.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	var svc string
	var ev Event
	if c.New != nil {
		svc, ev = r.applyLocked(c.Key, c.New.ModRevision, c.New)
	} else {
		svc, ev = r.applyLocked(c.Key, c.Revision, nil)
	}
	if svc == "" {
		return
	}
	if r.loaded.Load() {
		r.publishLocked(svc)
	}
	// After publishing: a reader of the event finds the change in Discover.
	r.notifyLocked(svc, ev)
}

// applyLocked records kv (nil: deleted) at rev for key and returns the service whose set
// changed and the event that tells it, or "" when nothing did. The caller publishes the
// change before it notifies the event.
func (r *Resolver) applyLocked(key string, rev int64, kv *watch.KV) (string, Event) {
	svc, id, ok := parseKey(r.prefix, key)
	if !ok {
		return "", Event{}
	}
	loaded := r.loaded.Load()
	ids := r.entries[svc]
	if ids == nil {
		ids = map[string]entry{}
		r.entries[svc] = ids
	}
	old, had := ids[id]
	if had && (old.rev > rev || (old.rev == rev && old.present == (kv != nil))) {
		return "", Event{}
	}
	remove := func() (string, Event) {
		if loaded {
			delete(ids, id)
			if len(ids) == 0 {
				delete(r.entries, svc)
			}
		} else {
			ids[id] = entry{rev: rev}
		}
		if !had || !old.present {
			return "", Event{}
		}
		return svc, Event{Type: Removed, Instance: old.inst}
	}
	if kv == nil {
		return remove()
	}
	inst, err := decodeInstance(svc, id, kv.Value)
	if err != nil {
		r.log.Warn("skipping invalid instance", zap.String("key", key), zap.Error(err))
		return remove()
	}
	ids[id] = entry{rev: rev, inst: inst, present: true}
	if had && old.present && equal(old.inst, inst) {
		// Rewritten with the same content (a new lease, reordered JSON): not a change.
		return "", Event{}
	}
	typ := Added
	if had && old.present {
		typ = Updated
	}
	return svc, Event{Type: typ, Instance: inst}
}

// publishLocked replaces the snapshot of svc from the index and wakes its subscribers.
func (r *Resolver) publishLocked(svc string) {
	if snap := r.buildLocked(svc); snap == emptySnapshot {
		r.snaps.Delete(svc)
	} else {
		r.snaps.Store(svc, snap)
	}
	r.gen.Add(1)
	for _, sub := range r.subs[svc] {
		sub.wake()
	}
}

func (r *Resolver) buildLocked(svc string) *snapshot {
	ids := r.entries[svc]
	list := make([]Instance, 0, len(ids))
	for _, e := range ids {
		if e.present {
			list = append(list, e.inst)
		}
	}
	if len(list) == 0 {
		return emptySnapshot
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return &snapshot{instances: list}
}

// lookup returns the current snapshot of service, emptySnapshot when it has no
// instance, or nil before the first listing. It takes no lock and stores nothing.
func (r *Resolver) lookup(service string) *snapshot {
	// Readiness first: every service is published before loaded is set.
	if !r.loaded.Load() {
		return nil
	}
	if s, ok := r.snaps.Load(service); ok {
		return s.(*snapshot)
	}
	return emptySnapshot
}

// WaitReady blocks until the first listing is in memory or ctx ends.
func (r *Resolver) WaitReady(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	case <-r.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Discover returns the instances of service, sorted by ID, drained ones included (see
// Instance.Drained). It reads memory only. Before the first listing it returns
// ErrNotReady.
func (r *Resolver) Discover(service string) ([]Instance, error) {
	if msg := validName(service); msg != "" {
		return nil, fmt.Errorf("%w: service name %s", ErrInvalidArgument, msg)
	}
	snap := r.lookup(service)
	if snap == nil {
		return nil, ErrNotReady
	}
	out := make([]Instance, len(snap.instances))
	for i, inst := range snap.instances {
		out[i] = inst.clone()
	}
	return out, nil
}

// Stale reports whether the resolver is disconnected from etcd and answering from what it
// last saw.
func (r *Resolver) Stale() bool { return r.cache.Stale() }

// Watch returns a channel of the changes to service's instances: first an Added event for
// every current instance, then every change, each instance's in order. While the reader
// is behind, the changes to one instance are merged into their net effect (added then
// updated is one Added with the new value; added then removed is nothing; removed then
// added is one Updated), so the queue holds at most one event per instance and a reader
// that catches up has seen every instance's latest state. An event is sent once Discover
// serves what it announces. The channel is closed when ctx ends or the Resolver is
// closed.
func (r *Resolver) Watch(ctx context.Context, service string) (<-chan Event, error) {
	if msg := validName(service); msg != "" {
		return nil, fmt.Errorf("%w: service name %s", ErrInvalidArgument, msg)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	s := r.addSubLocked(service, true)
	// Before the first listing the index holds what arrived so far; the listing itself
	// will be delivered as Added events when it is merged.
	var initial []Instance
	for _, e := range r.entries[service] {
		if e.present {
			initial = append(initial, e.inst)
		}
	}
	sort.Slice(initial, func(i, j int) bool { return initial[i].ID < initial[j].ID })
	for _, inst := range initial {
		s.push(Event{Type: Added, Instance: inst})
	}
	s.wake()
	r.wg.Add(1)
	r.mu.Unlock()

	out := make(chan Event)
	go func() {
		defer r.wg.Done()
		defer close(out)
		defer r.removeSub(service, s.id)
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.closed:
				return
			case <-s.notify:
			}
			for {
				ev, ok := s.pop()
				if !ok {
					break
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				case <-s.closed:
					return
				}
			}
		}
	}()
	return out, nil
}

// subscriber is a Watch channel's queue, or a wake-up for the gRPC resolver.
//
// The queue holds at most one event per instance: a change to an instance that already
// has one pending is merged into it (the net change), so a slow reader costs memory in
// proportion to the service, not to the rate of changes.
type subscriber struct {
	id      int
	queue   bool
	mu      sync.Mutex
	order   []string         // IDs with a pending slot, in the order the slots were made
	pending map[string]Event // ID → net change; Type 0 when the changes cancelled out
	notify  chan struct{}    // capacity 1
	closed  chan struct{}
}

func (s *subscriber) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *subscriber) push(ev Event) {
	if !s.queue {
		return
	}
	// Each reader gets its own Metadata: what it does with it is not the index's business.
	ev.Instance = ev.Instance.clone()
	s.mu.Lock()
	id := ev.Instance.ID
	old, ok := s.pending[id]
	switch {
	case !ok:
		s.order = append(s.order, id)
	case old.Type == Added && ev.Type == Removed:
		ev = Event{} // never seen by the reader: nothing to tell
	case old.Type == Added:
		ev.Type = Added // added, then changed: added with the new value
	case old.Type == Removed && ev.Type == Added:
		ev.Type = Updated // the reader knows an older value
	}
	s.pending[id] = ev
	s.mu.Unlock()
	s.wake()
}

func (s *subscriber) pop() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.order) > 0 {
		id := s.order[0]
		s.order[0] = ""
		s.order = s.order[1:]
		ev := s.pending[id]
		delete(s.pending, id)
		if ev.Type != 0 {
			return ev, true
		}
	}
	return Event{}, false
}

func (r *Resolver) addSubLocked(service string, queue bool) *subscriber {
	r.nextSub++
	s := &subscriber{id: r.nextSub, queue: queue, pending: map[string]Event{}, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	if r.subs[service] == nil {
		r.subs[service] = map[int]*subscriber{}
	}
	r.subs[service][s.id] = s
	return s
}

func (r *Resolver) removeSub(service string, id int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs[service], id)
	if len(r.subs[service]) == 0 {
		delete(r.subs, service)
	}
}

func (r *Resolver) notifyLocked(service string, ev Event) {
	for _, s := range r.subs[service] {
		s.push(ev)
	}
}

// Close stops the watch and closes every Watch channel; it waits for the goroutines it
// owns and is idempotent.
func (r *Resolver) Close() error {
	r.closeOnce.Do(func() {
		r.unsubscribe()
		r.mu.Lock()
		r.closed = true
		close(r.stop)
		for _, subs := range r.subs {
			for _, s := range subs {
				close(s.closed)
			}
		}
		r.mu.Unlock()
		r.closeErr = r.cache.Close()
		r.wg.Wait()
	})
	return r.closeErr
}
