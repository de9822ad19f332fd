package watch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/etcd-monitor/etcd-monitor/internal/backoff"
)

// stream is the resilient list+watch loop shared by Watcher and Cache. It hands each
// batch of events (all events of one or more whole revisions, in revision order, or one
// Resync) to a sink on its own goroutine.
type stream struct {
	cli  *clientv3.Client
	key  string
	opts options
	id   int64 // unique in the process: the stream's own gRPC watch stream

	// established is true while a watch is open and acknowledged by etcd.
	established atomic.Bool
	// abandoned counts the watches given up because etcd stopped answering.
	abandoned atomic.Int64
	// epoch is when the stream was made, with its monotonic clock reading; heard is the
	// time of the last response from etcd on the open watch, as nanoseconds since epoch.
	// Silence is timed on the monotonic clock only: a wall clock stepped back must not
	// hide a silence, nor one stepped forward invent one.
	epoch time.Time
	heard atomic.Int64

	// exactStart makes the next watch open at the first revision not yet delivered
	// rather than one before it (see watch). Used by the run goroutine only.
	exactStart bool
}

// streamIDs numbers the streams of this process (see watch).
var streamIDs atomic.Int64

func newStream(cli *clientv3.Client, key string, o options) *stream {
	return &stream{cli: cli, key: key, opts: o, epoch: o.now(), id: streamIDs.Add(1)}
}

// elapsed is the monotonic time since the stream was made.
func (s *stream) elapsed() time.Duration { return s.opts.now().Sub(s.epoch) }

// markHeard records that etcd answered just now.
func (s *stream) markHeard() { s.heard.Store(int64(s.elapsed())) }

// silence is how long etcd has said nothing on the open watch.
func (s *stream) silence() time.Duration { return s.elapsed() - time.Duration(s.heard.Load()) }

// A watch is stale after staleSilence progress intervals without a word from etcd, and
// is reopened after reopenSilence.
const (
	staleSilence  = 3
	reopenSilence = 6
)

// sink receives a batch; it returns false when the stream must stop (ctx ended).
type sink func(ctx context.Context, batch []Event) bool

// stale reports whether the stream may be behind etcd: no watch open, or no word from
// etcd for three progress intervals.
func (s *stream) stale() bool {
	if !s.established.Load() {
		return true
	}
	silent := s.silence()
	return silent > staleSilence*s.opts.progressInterval
}

// run delivers events until ctx ends or the client is closed; it returns why it stopped.
func (s *stream) run(ctx context.Context, emit sink) error {
	next := s.opts.startRev // the first revision not yet delivered; 0 = not yet known
	needList := s.opts.initialState
	b := backoff.New(50*time.Millisecond, 2*time.Second)
	// A list or revision lookup that etcd does not answer (a blackholed endpoint) is
	// given up like a silent watch, and tried again, perhaps through another endpoint.
	// The bound doubles after each timeout, so that a list too large for it still
	// completes in the end.
	minBound := reopenSilence * s.opts.progressInterval
	bound := minBound
	timedOut := func(err error) {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			bound = min(2*bound, 64*minBound)
		}
	}
	for {
		if err := s.fatal(ctx); err != nil {
			return err
		}
		if needList {
			ev, err := s.list(ctx, bound)
			if err != nil {
				if ferr := s.fatal(ctx); ferr != nil {
					return ferr
				}
				s.opts.logger.Warn("watch: list failed", zap.String("key", s.key), zap.Error(err))
				timedOut(err)
				b.Wait(ctx)
				continue
			}
			bound = minBound
			// A fresh list is as current as a watch: not stale while the watch opens.
			s.markHeard()
			s.established.Store(true)
			if !emit(ctx, []Event{ev}) {
				return s.fatal(ctx)
			}
			next = ev.Revision + 1
			needList = false
			b.Reset()
		}
		if next == 0 {
			rev, err := s.currentRevision(ctx, bound)
			if err != nil {
				if ferr := s.fatal(ctx); ferr != nil {
					return ferr
				}
				s.opts.logger.Warn("watch: revision lookup failed", zap.String("key", s.key), zap.Error(err))
				timedOut(err)
				b.Wait(ctx)
				continue
			}
			bound = minBound
			next = rev + 1
		}
		progressed, compacted, err := s.watch(ctx, &next, emit)
		if ferr := s.fatal(ctx); ferr != nil {
			return ferr
		}
		if progressed {
			b.Reset()
		}
		if compacted {
			s.opts.logger.Info("watch: resume revision compacted, re-listing",
				zap.String("key", s.key), zap.Int64("revision", next))
			needList = true
			continue
		}
		s.opts.logger.Debug("watch: interrupted, resuming", zap.String("key", s.key),
			zap.Int64("revision", next), zap.Error(err))
		b.Wait(ctx)
	}
}

// fatal returns the error that ends the stream for good, or nil.
func (s *stream) fatal(ctx context.Context) error {
	if ctx.Err() != nil {
		return ErrClosed
	}
	if err := s.cli.Ctx().Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClientClosed, err)
	}
	return nil
}

func (s *stream) getOpts() []clientv3.OpOption {
	if s.opts.prefix {
		return []clientv3.OpOption{clientv3.WithPrefix()}
	}
	return nil
}

// list reads the current state as a Resync event, giving up after bound.
func (s *stream) list(ctx context.Context, bound time.Duration) (Event, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.key, s.getOpts()...)
	if err != nil {
		return Event{}, fmt.Errorf("watch: list %q: %w", s.key, err)
	}
	state := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		state[i] = fromPB(kv)
	}
	return Event{Type: Resync, State: state, Revision: resp.Header.Revision}, nil
}

// currentRevision returns the store revision, so that "from now" is a fixed revision
// from which every later resume starts. It gives up after bound.
func (s *stream) currentRevision(ctx context.Context, bound time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	// One key, counted only: the header's store revision is all we need.
	resp, err := s.cli.Get(ctx, s.key, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("watch: current revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// watch opens one watch from *next and delivers until it breaks. It advances *next past
// every delivered revision and every revision etcd confirms as complete. It reports
// whether anything was received, and whether the watch broke because *next was
// compacted.
func (s *stream) watch(ctx context.Context, next *int64, emit sink) (progressed, compacted bool, err error) {
	// The client multiplexes watches with equal metadata onto one gRPC stream. Give each
	// stream a gRPC stream of its own: etcd answers a progress request only when every
	// watch on the gRPC stream is caught up, so another watch on the same client (one
	// catching up, or starting at a future revision) would make ours look silent. And
	// the client keeps a gRPC stream that etcd stopped answering for as long as a watch
	// waits on it: after abandoning one, the next watch opens on a new one.
	wctx := metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx),
		"etcd-monitor-watch-stream", strconv.FormatInt(s.id, 10)+"."+strconv.FormatInt(s.abandoned.Load(), 10))
	wctx, cancel := context.WithCancel(wctx)
	defer cancel()
	// Open the watch one revision back. etcd answers a progress request only once the
	// store revision has reached every watch's start revision, so a watch opened at
	// *next on a quiet store would never be confirmed alive, and would be abandoned as
	// silent. The events of that one revision were delivered already and are dropped
	// below. If that revision is just compacted, the next attempt opens at *next.
	start := max(*next-1, 1)
	if s.exactStart {
		start, s.exactStart = *next, false
	}
	opts := append(s.getOpts(), clientv3.WithRev(start), clientv3.WithCreatedNotify(), clientv3.WithProgressNotify())
	if s.opts.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	// A watchdog asks etcd for progress every interval: the answer proves the watch is
	// alive (Stale) and lets a resume start after revisions that touched nothing we
	// watch. A watch etcd stops answering (a blackholed connection, a hung member) is
	// abandoned, so that it can be reopened, possibly through another endpoint. The
	// watchdog runs before Watch is called because opening a watch on a dead stream can
	// itself block.
	s.markHeard()
	var emitting atomic.Bool // waiting for the consumer is not etcd's silence
	silenced := make(chan time.Duration, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.opts.progressInterval)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			silent := s.silence()
			if !emitting.Load() && silent > reopenSilence*s.opts.progressInterval {
				s.abandoned.Add(1)
				silenced <- silent
				cancel()
				return
			}
			// A context derived from wctx keeps its stream key, so the request goes on the
			// watch's own stream; the timeout keeps a stuck stream from holding us.
			rctx, rcancel := context.WithTimeout(wctx, s.opts.progressInterval)
			_ = s.cli.RequestProgress(rctx)
			rcancel()
		}
	}()
	defer func() {
		s.established.Store(false)
		cancel()
		wg.Wait()
	}()
	wch := s.cli.Watch(wctx, s.key, opts...)

	var batch []Event
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return progressed, false, ctx.Err()
		case silent := <-silenced:
			return progressed, false, fmt.Errorf("watch: no word from etcd for %v", silent.Round(time.Millisecond))
		case resp, ok = <-wch:
		}
		if !ok {
			return progressed, false, errors.New("watch: channel closed")
		}
		s.markHeard()
		if resp.CompactRevision > 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			if start < *next && resp.CompactRevision > 0 && resp.CompactRevision <= *next {
				// Only the revision before *next is gone: nothing we need is.
				s.exactStart = true
				return progressed, false, resp.Err()
			}
			return progressed, true, resp.Err()
		}
		if err := resp.Err(); err != nil {
			return progressed, false, err
		}
		if resp.Canceled {
			return progressed, false, fmt.Errorf("watch: canceled by etcd: %s", resp.CancelReason)
		}
		progressed = true
		if resp.Created {
			s.established.Store(true)
			continue
		}
		if resp.IsProgressNotify() {
			// etcd confirms every event up to this revision has been sent.
			*next = max(*next, resp.Header.Revision+1)
			continue
		}
		batch = batch[:0]
		last := int64(0)
		for _, ev := range resp.Events {
			rev := ev.Kv.ModRevision
			if rev < *next {
				continue // already delivered before a resume
			}
			e := Event{Type: Put, KV: fromPB(ev.Kv), Revision: rev}
			if ev.Type == clientv3.EventTypeDelete {
				e.Type = Delete
			}
			if ev.PrevKv != nil {
				p := fromPB(ev.PrevKv)
				e.PrevKV = &p
			}
			batch = append(batch, e)
			last = rev
		}
		if len(batch) == 0 {
			continue
		}
		emitting.Store(true)
		delivered := emit(ctx, batch)
		s.markHeard()
		emitting.Store(false)
		if !delivered {
			return progressed, false, ctx.Err()
		}
		// etcd never splits one revision's events across responses, so the whole
		// revision has now been delivered.
		*next = last + 1
	}
}
