package watch

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Option configures a Watcher or a Cache.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// optionSet records which options were given, so that a constructor can refuse the
// ones it would ignore.
type optionSet uint

const (
	setPrefix optionSet = 1 << iota
	setStartRev
	setPrevKV
	setInitialState
	setBuffer
)

// watcherOnly names the options that only a Watcher uses.
var watcherOnly = []struct {
	bit  optionSet
	name string
}{
	{setPrefix, "WithPrefix"},
	{setStartRev, "WithStartRevision"},
	{setPrevKV, "WithPrevKV"},
	{setInitialState, "WithInitialState"},
	{setBuffer, "WithBuffer"},
}

type options struct {
	// prefix watches every key with the given prefix. Default false (one key).
	prefix bool
	// startRev is the first revision delivered. Default 0: from the revision current
	// when the Watcher starts.
	startRev int64
	// prevKV asks etcd for the previous value of each changed key. Default false.
	prevKV bool
	// initialState emits the current state as a first Resync. Default false.
	initialState bool
	// buffer is the capacity of the Events channel. Default 1024.
	buffer int
	// progressInterval is how often the Watcher asks etcd to confirm the watch is alive;
	// a watch silent for three intervals counts as stale. Default 500ms.
	progressInterval time.Duration
	// logger. Default zap.NewNop().
	logger *zap.Logger
	// now is the clock; tests substitute one whose wall reading steps. Default time.Now.
	now func() time.Time
	// beforeStart, when set by a test, runs in NewCache before the Cache's goroutine
	// starts, so that the test can subscribe before the first listing for certain.
	beforeStart func(*Cache)

	set optionSet
}

func defaults() options {
	return options{
		buffer:           1024,
		progressInterval: 500 * time.Millisecond,
		logger:           zap.NewNop(),
		now:              time.Now,
	}
}

func (o *options) validate() error {
	switch {
	case o.startRev < 0:
		return fmt.Errorf("%w: WithStartRevision: negative revision %d", ErrInvalidArgument, o.startRev)
	case o.buffer < 0:
		return fmt.Errorf("%w: WithBuffer: negative size %d", ErrInvalidArgument, o.buffer)
	case o.progressInterval <= 0:
		return fmt.Errorf("%w: WithProgressInterval: must be positive, got %v", ErrInvalidArgument, o.progressInterval)
	case o.logger == nil:
		return fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidArgument)
	}
	return nil
}

func newOptions(opts []Option) (options, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	return o, o.validate()
}

// WithPrefix watches every key that starts with the key given to NewWatcher. Watcher
// only: a Cache always covers a prefix, and NewCache refuses it.
func WithPrefix() Option {
	return optionFunc(func(o *options) { o.prefix = true; o.set |= setPrefix })
}

// WithStartRevision delivers events from revision rev on (rev included). If rev is
// already compacted, the Watcher starts with a Resync. Default: from the revision
// current when the Watcher starts. Watcher only: a Cache always starts from a list.
func WithStartRevision(rev int64) Option {
	return optionFunc(func(o *options) { o.startRev = rev; o.set |= setStartRev })
}

// WithPrevKV fills Event.PrevKV with the key's previous value when etcd still has it.
// Watcher only: Cache.Subscribe reports the old value already.
func WithPrevKV() Option {
	return optionFunc(func(o *options) { o.prevKV = true; o.set |= setPrevKV })
}

// WithInitialState makes the first event a Resync carrying the current state, and the
// events after it start right after that state's revision: list and watch in one.
// Watcher only: a Cache always does this.
func WithInitialState() Option {
	return optionFunc(func(o *options) { o.initialState = true; o.set |= setInitialState })
}

// WithBuffer sets the capacity of the Events channel. Default 1024. Watcher only: a
// Cache has no channel.
func WithBuffer(n int) Option {
	return optionFunc(func(o *options) { o.buffer = n; o.set |= setBuffer })
}

// WithProgressInterval sets how often the watch asks etcd to confirm it is alive and
// up to date; a watch not heard from for three intervals counts as stale (Cache.Stale).
// Default 500ms.
func WithProgressInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.progressInterval = d })
}

// WithLogger sets the logger. Default: zap.NewNop().
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }
