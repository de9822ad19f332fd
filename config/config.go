package config

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/watch"
)

// Change is one key's change, as delivered to Watch callbacks. Old is nil when the key
// was added, New is nil when it was removed; both are the raw stored bytes (normally
// JSON), a copy for each callback.
type Change struct {
	Key      string // relative to the Store's prefix, e.g. "database/host"
	Old, New json.RawMessage
	Revision int64 // the etcd revision of the change
}

// Store is typed configuration under a key prefix, held in memory by a list+watch cache.
// Getters read memory only; Set, Delete, Snapshot and Restore write to etcd.
type Store struct {
	cli      *clientv3.Client
	prefix   string
	snapPfx  string
	opts     options
	log      *zap.Logger
	cache    *watch.Cache
	unsub    func()
	ready    chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	disp     *dispatcher
	closeOne sync.Once
	closeErr error

	mu     sync.RWMutex
	vals   map[string]*value // relative key → value; tombstones only until loaded
	loaded bool
}

// value is a stored value and its parse, done once per change.
type value struct {
	raw     []byte
	rev     int64
	present bool
	parsed  any // nil, bool, string, json.Number, []any, map[string]any
	perr    error
}

func newValue(raw []byte, rev int64) *value {
	v := &value{raw: raw, rev: rev, present: true}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v.parsed); err != nil {
		v.perr = err
	} else if dec.More() {
		v.perr = fmt.Errorf("trailing data after JSON value")
	}
	return v
}

// New returns a Store over prefix ("/app/config" and "/app/config/" are the same) and
// starts its cache. Getters wait up to the ready timeout for the first listing; WaitReady
// waits under a context.
func New(cli *clientv3.Client, prefix string, opts ...Option) (*Store, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if strings.Trim(prefix, "/") == "" {
		return nil, fmt.Errorf("%w: empty prefix", ErrInvalidArgument)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cli:    cli,
		prefix: strings.TrimRight(prefix, "/") + "/",
		opts:   o,
		log:    o.logger,
		vals:   map[string]*value{},
		ready:  make(chan struct{}),
		stop:   make(chan struct{}),
	}
	s.snapPfx = o.snapshotPrefix
	if s.snapPfx == "" {
		s.snapPfx = strings.TrimRight(prefix, "/") + ".snapshots/"
	}
	s.snapPfx = strings.TrimRight(s.snapPfx, "/") + "/"
	if strings.HasPrefix(s.snapPfx, s.prefix) {
		return nil, fmt.Errorf("%w: WithSnapshotPrefix: %q is under the store prefix %q", ErrInvalidArgument, s.snapPfx, s.prefix)
	}
	s.disp = newDispatcher(&s.wg)
	cache, err := watch.NewCache(cli, s.prefix, watch.WithLogger(o.logger))
	if err != nil {
		s.disp.close()
		s.wg.Wait()
		return nil, err
	}
	s.cache = cache
	s.unsub = cache.Subscribe(s.onChange)
	s.wg.Add(1)
	go s.loadWhenReady()
	return s, nil
}

func (s *Store) loadWhenReady() {
	defer s.wg.Done()
	select {
	case <-s.cache.Ready():
	case <-s.stop:
		return
	}
	kvs := s.cache.List("")
	s.mu.Lock()
	var changes []Change
	for _, kv := range kvs {
		if c, ok := s.applyLocked(kv.Key, kv.ModRevision, kv.Value, true); ok {
			changes = append(changes, c)
		}
	}
	for k, v := range s.vals {
		if !v.present {
			delete(s.vals, k)
		}
	}
	s.loaded = true
	// Queue the changes before unlocking: onChange, waiting on s.mu with a newer
	// revision, must queue after these, so that callbacks see revision order.
	close(s.ready)
	s.disp.push(changes...)
	s.mu.Unlock()
}

func (s *Store) onChange(c watch.Change) {
	var ch Change
	var ok bool
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.New != nil {
		ch, ok = s.applyLocked(c.Key, c.New.ModRevision, c.New.Value, true)
	} else {
		ch, ok = s.applyLocked(c.Key, c.Revision, nil, false)
	}
	if ok {
		s.disp.push(ch) // under s.mu: in the order applied (see loadWhenReady)
	}
}

// applyLocked installs a value (present=false: deleted) unless a newer one is known, and
// returns the change to report, if any.
func (s *Store) applyLocked(key string, rev int64, raw []byte, present bool) (Change, bool) {
	rel, ok := strings.CutPrefix(key, s.prefix)
	if !ok || rel == "" {
		return Change{}, false
	}
	old := s.vals[rel]
	if old != nil && (old.rev > rev || (old.rev == rev && old.present == present)) {
		return Change{}, false
	}
	ch := Change{Key: rel, Revision: rev}
	if old != nil && old.present {
		ch.Old = old.raw
	}
	if present {
		s.vals[rel] = newValue(raw, rev)
		ch.New = raw
	} else if s.loaded {
		delete(s.vals, rel)
	} else {
		s.vals[rel] = &value{rev: rev}
	}
	if ch.Old == nil && ch.New == nil {
		return Change{}, false
	}
	if ch.Old != nil && ch.New != nil && bytes.Equal(ch.Old, ch.New) {
		// Rewritten with the same value (a restore does that): nothing changed.
		return Change{}, false
	}
	return ch, true
}

// WaitReady blocks until the first listing is in memory, ctx ends, or the Store closes.
func (s *Store) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-s.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stale reports whether the Store may be behind etcd (disconnected or re-listing).
func (s *Store) Stale() bool { return s.cache.Stale() }

func (s *Store) waitReady() error {
	select {
	case <-s.ready:
		return nil
	default:
	}
	if s.opts.readyTimeout == 0 {
		return ErrNotReady
	}
	t := time.NewTimer(s.opts.readyTimeout)
	defer t.Stop()
	select {
	case <-s.ready:
		return nil
	case <-s.stop:
		return ErrClosed
	case <-t.C:
		return ErrNotReady
	}
}

// lookup returns the value of key from memory.
func (s *Store) lookup(key string) (*value, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := s.waitReady(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	v := s.vals[key]
	s.mu.RUnlock()
	if v == nil || !v.present {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return v, nil
}

func (v *value) typeErr(key, want string) error {
	if v.perr != nil {
		return &TypeError{Key: key, Want: want, Got: "invalid JSON", Err: v.perr}
	}
	return &TypeError{Key: key, Want: want, Got: kindOf(v.parsed)}
}

func kindOf(x any) string {
	switch x := x.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case string:
		return "string"
	case json.Number:
		return "number " + x.String()
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", x)
}

// Raw returns the stored bytes of key.
func (s *Store) Raw(key string) (json.RawMessage, error) {
	v, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	return append(json.RawMessage(nil), v.raw...), nil
}

// String returns a JSON string value.
func (s *Store) String(key string) (string, error) {
	v, err := s.lookup(key)
	if err != nil {
		return "", err
	}
	if x, ok := v.parsed.(string); ok && v.perr == nil {
		return x, nil
	}
	return "", v.typeErr(key, "string")
}

// Int returns a JSON number whose value is an integer that fits an int, in any JSON
// form ("10", "10.0", "1e3"). A number out of range, or with a fraction, is a *TypeError:
// Int never rounds or clamps.
func (s *Store) Int(key string) (int, error) {
	v, err := s.lookup(key)
	if err != nil {
		return 0, err
	}
	if x, ok := v.parsed.(json.Number); ok && v.perr == nil {
		n, err := exactInt(string(x))
		if err == nil {
			return n, nil
		}
		return 0, &TypeError{Key: key, Want: "int", Got: kindOf(x), Err: err}
	}
	return 0, v.typeErr(key, "int")
}

// Float returns a JSON number.
func (s *Store) Float(key string) (float64, error) {
	v, err := s.lookup(key)
	if err != nil {
		return 0, err
	}
	if x, ok := v.parsed.(json.Number); ok && v.perr == nil {
		if f, err := x.Float64(); err == nil {
			return f, nil
		}
	}
	return 0, v.typeErr(key, "float")
}

// Bool returns a JSON boolean.
func (s *Store) Bool(key string) (bool, error) {
	v, err := s.lookup(key)
	if err != nil {
		return false, err
	}
	if x, ok := v.parsed.(bool); ok && v.perr == nil {
		return x, nil
	}
	return false, v.typeErr(key, "bool")
}

// Duration returns a JSON string in time.ParseDuration form ("1.5s"), or a JSON number
// whose value is an integer of nanoseconds (how encoding/json writes a time.Duration;
// "1e9" is a second). Like Int, it never rounds.
func (s *Store) Duration(key string) (time.Duration, error) {
	v, err := s.lookup(key)
	if err != nil {
		return 0, err
	}
	if v.perr == nil {
		switch x := v.parsed.(type) {
		case string:
			if d, err := time.ParseDuration(x); err == nil {
				return d, nil
			}
		case json.Number:
			if n, err := exactIntBits(string(x), 64); err == nil {
				return time.Duration(n), nil
			}
		}
	}
	return 0, v.typeErr(key, "duration")
}

// Decode unmarshals the JSON value of key into out (a pointer).
func (s *Store) Decode(key string, out any) error {
	v, err := s.lookup(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(v.raw, out); err != nil {
		got := kindOf(v.parsed)
		if v.perr != nil {
			got = "invalid JSON"
		}
		return &TypeError{Key: key, Want: fmt.Sprintf("%T", out), Got: got, Err: err}
	}
	return nil
}

// Keys returns the keys under prefix ("" for all, "database" for "database" and
// "database/..."), sorted, from memory.
func (s *Store) Keys(prefix string) []string {
	if s.waitReady() != nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for k, v := range s.vals {
		if v.present && matches(prefix, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Set stores value as JSON under key. A json.RawMessage is stored as is, after checking
// that it is valid JSON. A string that is not valid UTF-8 is refused rather than
// altered (encoding/json would replace its bad bytes).
func (s *Store) Set(ctx context.Context, key string, value any) error {
	if err := validKey(key); err != nil {
		return err
	}
	var b []byte
	if raw, ok := value.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return &TypeError{Key: key, Want: "JSON", Got: "invalid JSON"}
		}
		b = raw
	} else {
		if str, ok := value.(string); ok && !utf8.ValidString(str) {
			// encoding/json would replace the bad bytes with U+FFFD without a word.
			return fmt.Errorf("%w: set %q: the string is not valid UTF-8, which a JSON string cannot carry (store []byte instead)", ErrInvalidArgument, key)
		}
		var err error
		if b, err = json.Marshal(value); err != nil {
			return fmt.Errorf("config: set %q: %w", key, err)
		}
	}
	if _, err := s.cli.Put(ctx, s.prefix+key, string(b)); err != nil {
		return fmt.Errorf("config: set %q: %w", key, err)
	}
	return nil
}

// Delete removes key (only that key, not the keys under it).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	if _, err := s.cli.Delete(ctx, s.prefix+key); err != nil {
		return fmt.Errorf("config: delete %q: %w", key, err)
	}
	return nil
}

// Watch calls fn for every change of key, or of any key under it ("database" matches
// "database" and "database/host"; "" matches everything), in revision order. Callbacks
// run one at a time on the Store's dispatch goroutine, after the getters already return
// the new value; a slow callback delays the others but never the cache. cancel stops the
// calls (one may still be running when it returns).
func (s *Store) Watch(key string, fn func(Change)) (cancel func(), err error) {
	if key != "" {
		if err := validKey(strings.TrimSuffix(key, "/")); err != nil {
			return nil, err
		}
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: nil callback", ErrInvalidArgument)
	}
	select {
	case <-s.stop:
		return nil, ErrClosed
	default:
	}
	return s.disp.add(strings.TrimSuffix(key, "/"), fn), nil
}

// Close stops the cache and the dispatch goroutine, waits for them, and is idempotent.
// Getters keep answering from the last state. Close may be called from a Watch
// callback: it then returns without waiting for that callback (which would wait for
// itself), and no callback runs after it.
func (s *Store) Close() error {
	s.closeOne.Do(func() {
		close(s.stop)
		s.unsub()
		s.closeErr = s.cache.Close()
		s.disp.close()
	})
	if !s.disp.running() {
		s.wg.Wait()
	}
	return s.closeErr
}

// matches reports whether key is pattern or under it.
func matches(pattern, key string) bool {
	if pattern == "" || key == pattern {
		return true
	}
	return len(key) > len(pattern) && key[len(pattern)] == '/' && key[:len(pattern)] == pattern
}

func validKey(key string) error {
	switch {
	case key == "":
		return &keyError{"empty"}
	case strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/"):
		return &keyError{fmt.Sprintf("%q starts or ends with '/'", key)}
	case strings.Contains(key, "//"):
		return &keyError{fmt.Sprintf("%q has an empty segment", key)}
	}
	return nil
}

// keyError is an invalid key: it matches ErrInvalidKey and ErrInvalidArgument.
type keyError struct{ msg string }

func (e *keyError) Error() string { return ErrInvalidKey.Error() + ": " + e.msg }

func (e *keyError) Is(target error) bool {
	return target == ErrInvalidKey || target == ErrInvalidArgument
}
