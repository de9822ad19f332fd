package config

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// dispatcher runs Watch callbacks on one goroutine, in order, from a queue without bound,
// so that a slow callback never stalls the cache.
type dispatcher struct {
	mu      sync.Mutex
	queue   []Change
	watches []*watcher
	wake    chan struct{}
	stop    chan struct{}
	once    sync.Once
	// gid is the dispatch goroutine's id, so that Close can tell it is called from a
	// callback (and must not wait for the goroutine it runs on).
	gid atomic.Uint64
}

type watcher struct {
	pattern  string
	fn       func(Change)
	canceled atomic.Bool
}

func newDispatcher(wg *sync.WaitGroup) *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), stop: make(chan struct{})}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.run()
	}()
	return d
}

func (d *dispatcher) push(changes ...Change) {
	if len(changes) == 0 {
		return
	}
	d.mu.Lock()
	if len(d.watches) > 0 {
		d.queue = append(d.queue, changes...)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) add(pattern string, fn func(Change)) func() {
	w := &watcher{pattern: pattern, fn: fn}
	d.mu.Lock()
	d.watches = append(d.watches, w)
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.canceled.Store(true)
			d.mu.Lock()
			defer d.mu.Unlock()
			for i, x := range d.watches {
				if x == w {
					d.watches = append(d.watches[:i:i], d.watches[i+1:]...)
					break
				}
			}
		})
	}
}

func (d *dispatcher) run() {
	d.gid.Store(goid())
	for {
		select {
		case <-d.stop:
			return
		case <-d.wake:
		}
		for {
			d.mu.Lock()
			batch := d.queue
			d.queue = nil
			watches := d.watches
			d.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				for _, w := range watches {
					select {
					case <-d.stop:
						return
					default:
					}
					if !w.canceled.Load() && matches(w.pattern, c.Key) {
						// Each callback gets bytes of its own: Old and New are also the
						// Store's memory and another callback's.
						w.fn(Change{Key: c.Key, Old: bytes.Clone(c.Old), New: bytes.Clone(c.New), Revision: c.Revision})
					}
				}
			}
		}
	}
}

func (d *dispatcher) close() { d.once.Do(func() { close(d.stop) }) }

// running reports whether the caller runs on the dispatch goroutine, that is, inside a
// callback.
func (d *dispatcher) running() bool {
	id := d.gid.Load()
	return id != 0 && id == goid()
}

// goid returns the calling goroutine's id, from the first line of its stack trace
// ("goroutine 42 [running]:"). It is used only to recognise a callback calling Close.
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
