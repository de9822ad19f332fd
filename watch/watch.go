package watch

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watcher delivers the changes of a key or prefix as a channel of events, resuming
// after interruptions without loss or duplicates and re-listing after compaction.
type Watcher struct {
	s      *stream
	events chan Event
	cancel context.CancelFunc
	exited chan struct{}

	mu  sync.Mutex
	err error

	closeOnce sync.Once
}

// NewWatcher starts watching key (or, with WithPrefix, every key under it). Events start
// at the revision current when the watch starts, or at WithStartRevision.
func NewWatcher(cli *clientv3.Client, key string, opts ...Option) (*Watcher, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if key == "" {
		return nil, fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{
		s:      newStream(cli, key, o),
		events: make(chan Event, o.buffer),
		cancel: cancel,
		exited: make(chan struct{}),
	}
	go w.run(ctx)
	return w, nil
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.exited)
	defer close(w.events)
	err := w.s.run(ctx, func(ctx context.Context, batch []Event) bool {
		for _, ev := range batch {
			select {
			case w.events <- ev: // the common case: room in the buffer
				continue
			default:
			}
			select {
			case w.events <- ev:
			case <-ctx.Done():
				return false
			}
		}
		return true
	})
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// Events returns the channel of events, in revision order, each delivered once. A
// Resync replaces the consumer's state. The channel is closed after Close, or when the
// client is closed; Err then says why.
func (w *Watcher) Events() <-chan Event { return w.events }

// Err returns nil while Events is open, and then why it closed: ErrClosed after Close,
// or an error wrapping ErrClientClosed.
func (w *Watcher) Err() error {
	select {
	case <-w.exited:
	default:
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops the watch, closes Events and waits for the Watcher's goroutine. Events
// not yet received are dropped. It is idempotent and returns nil.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		<-w.exited
	})
	return nil
}
