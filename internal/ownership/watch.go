package ownership

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// errSilent reports a watch abandoned because etcd stopped answering on it.
var errSilent = errors.New("watch silent")

// stream is a watcher of its own — one gRPC stream, to one member — whose silence is
// noticed: progress is requested on it every half of silence, and once etcd has answered
// nothing on it (no event, no progress, no watch created) for longer than silence, every
// watch on it ends and it takes no more. A member that stops answering while the rest of
// the cluster serves — a frozen process, a connection to a dead machine that stays open —
// then blinds its watches about silence, not for as long as it is silent: the watches
// made again, on a new stream, may go through another endpoint, and their creation is
// hedged (see watchConfirmed) so that they do not all go through the silent one again.
//
// The answer to a progress request proves every watch on the stream alive: etcd answers
// it once for the whole stream, and the client hands it to every watch. etcd answers it
// only when each watch on the stream has caught up and starts at or before the store's
// revision, so every watch made on a stream must start at a revision the store has
// reached (that of a read); its creation is confirmed at once in any case
// (WithCreatedNotify is added).
type stream struct {
	w       clientv3.Watcher
	silence time.Duration
	start   time.Time
	heard   atomic.Int64    // time.Since(start) at the last answer
	ctx     context.Context // ends when the stream is given up as silent, or closed
	cancel  context.CancelFunc
	silent  atomic.Bool
	spoke   atomic.Bool    // etcd has answered on it at least once
	wg      sync.WaitGroup // the silence check

	refs int // the watches on the session's shared stream, under Session.watchMu
}

// openStream opens a stream on cli given up after silence; close it when done.
func openStream(cli *clientv3.Client, silence time.Duration) *stream {
	s := &stream{w: clientv3.NewWatcher(cli), silence: silence, start: time.Now()}
	// Every watch and progress request on the stream carries the same metadata (that of
	// WithRequireLeader: a member cut off from the leader ends the watches), so that the
	// client sends them all on one gRPC stream.
	s.ctx, s.cancel = context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	s.wg.Add(1)
	go s.check()
	return s
}

// check requests progress every half of silence until the stream is closed, and gives
// the stream up once nothing was heard on it for longer than silence.
func (s *stream) check() {
	defer s.wg.Done()
	t := time.NewTicker(s.silence / 2)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(s.start)-time.Duration(s.heard.Load()) > s.silence {
			s.silent.Store(true)
			s.cancel()
			return
		}
		rctx, rcancel := context.WithTimeout(s.ctx, s.silence/2)
		_ = s.w.RequestProgress(rctx)
		rcancel()
	}
}

// watch watches key from rev on the stream until ctx ends or the stream is given up;
// pass every response to hear. Call stop when done.
func (s *stream) watch(ctx context.Context, key string, rev int64, opts ...clientv3.OpOption) (wch clientv3.WatchChan, stop func()) {
	// The stream's metadata, not any of ctx's: the client sends watches and progress
	// requests of other metadata on another gRPC stream.
	md, _ := metadata.FromOutgoingContext(s.ctx)
	wctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, md))
	unlink := context.AfterFunc(s.ctx, cancel)
	opts = append([]clientv3.OpOption{clientv3.WithRev(rev), clientv3.WithCreatedNotify()}, opts...)
	return s.w.Watch(wctx, key, opts...), func() {
		unlink()
		cancel()
	}
}

// hear records an answer on the stream.
func (s *stream) hear() {
	s.heard.Store(int64(time.Since(s.start)))
	s.spoke.Store(true)
}

// answered reports whether etcd has answered on the stream yet.
func (s *stream) answered() bool { return s.spoke.Load() }

// ended returns why the watches on the stream ended when they did not fail: errSilent,
// or that the stream was closed.
func (s *stream) ended() error {
	if s.silent.Load() {
		return errSilent
	}
	return errors.New("watch closed")
}

// close ends the stream and every watch on it. Closing the watcher also ends a gRPC
// stream that a progress request racing the end of the last watch opened anew.
func (s *stream) close() {
	s.cancel()
	s.wg.Wait()
	_ = s.w.Close()
}

// watching is a watch on a stream whose creation etcd has confirmed (see watchConfirmed).
type watching struct {
	st    *stream
	wch   clientv3.WatchChan
	stop  func()
	leave func(*stream)
}

// close ends the watch and leaves its stream.
func (w *watching) close() {
	w.stop()
	w.leave(w.st)
}

// watchConfirmed watches key from rev (see stream.watch) under ctx on a stream that join
// returns, and returns once etcd has confirmed the watch; leave is given the stream of
// each watch that ends. The watch's creation is hedged (see hedged): a watch not
// confirmed after wait is made again on the stream join returns then — join is given
// the stream of the last watch made, which etcd has not confirmed (nil at first), and
// must return a stream opened anew when that one has not answered yet — and the first
// confirmed is kept. The client opens each new stream through the next endpoint.
//
// Without this a watch reopened after one given up as silent would go through the
// silent member again, each time for as long as its silence (see stream), then read
// and reopened: the client takes its endpoints in turn for all of its requests, a read
// hedged through a silent member ends on an endpoint that answers (see hedged), and
// with two endpoints and nothing else sent the watch made right after that read goes
// to the silent one — every time, however long the member is silent. A watcher so
// placed learns of a delete only by the read after the next watch given up. The cost
// is nothing while etcd confirms a watch within wait (it is asked to in any case); else
// one more stream for each watch made again, its own progress requests with it, closed
// once no watch is left on it, and a silent one given up after its silence.
func watchConfirmed(ctx context.Context, wait time.Duration, join func(stale *stream) *stream, leave func(*stream),
	key string, rev int64, opts ...clientv3.OpOption) (*watching, error) {
	var mu sync.Mutex
	var last *stream // the stream of the last watch made
	return hedged(ctx, wait, func(hctx context.Context) (*watching, error) {
		mu.Lock()
		st := join(last)
		last = st
		mu.Unlock()
		// The watch lives on after the hedged call returns: under ctx, not hctx.
		wch, stop := st.watch(ctx, key, rev, opts...)
		w := &watching{st: st, wch: wch, stop: stop, leave: leave}
		var err error
		select {
		case wr, ok := <-wch:
			switch {
			case !ok:
				err = firstErr(ctx.Err(), st.ended())
			case wr.Err() != nil:
				err = wr.Err()
			case wr.Created:
				st.hear()
				return w, nil
			default:
				err = errors.New("watch not confirmed")
			}
		case <-hctx.Done():
			err = hctx.Err()
		}
		w.close()
		return nil, err
	}, (*watching).close)
}

// ownStream is a join for watchConfirmed that opens a stream of its own for every watch,
// on cli, given up after silence; its leave is (*stream).close.
func ownStream(cli *clientv3.Client, silence time.Duration) func(*stream) *stream {
	return func(*stream) *stream { return openStream(cli, silence) }
}

// joinStream returns the stream that the session's holdings watch their keys on (see
// Holding.monitor), opening one if none is open, the last was given up as silent, or
// it is stale — the stream on which the caller's last watch went unconfirmed for
// CallTimeout (see watchConfirmed) — and etcd has answered nothing on it yet: one for all
// the holdings of a session, however many, given up after twice CallTimeout — the
// silence after which a wait's watch is reopened. A stream replaced as stale serves the
// watches left on it until they end or it is given up as silent; the other holdings
// whose watches go unconfirmed on it hedge them on the stream that replaced it, not on
// one stream each. Call leaveStream when the watch made on it has ended.
func (s *Session) joinStream(stale *stream) *stream {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watches == nil || s.watches.ctx.Err() != nil || (s.watches == stale && !stale.answered()) {
		s.watches = openStream(s.cli, 2*s.CallTimeout())
	}
	s.watches.refs++
	return s.watches
}

// leaveStream closes st once no watch is left on it.
func (s *Session) leaveStream(st *stream) {
	s.watchMu.Lock()
	st.refs--
	last := st.refs == 0
	if last && s.watches == st {
		s.watches = nil
	}
	s.watchMu.Unlock()
	if last {
		st.close()
	}
}

// ErrWatchSilent is what Stream.Ended returns for a stream given up because etcd
// stopped answering on it.
var ErrWatchSilent = errSilent

// Stream is a stream (see stream) for the packages that build on this one: a watcher of
// its own, one gRPC stream to one member, that asks etcd for progress every half of its
// silence and ends its watches once etcd answered nothing on it for longer than that.
type Stream struct{ s *stream }

// OpenStream opens a Stream on cli given up after silence; Close it when done.
func OpenStream(cli *clientv3.Client, silence time.Duration) *Stream {
	return &Stream{openStream(cli, silence)}
}

// Watch watches key from rev until ctx ends or the stream is given up; rev must be a
// revision the store has reached (that of a read), and its creation is confirmed (see
// stream). Pass every response to Hear; call stop when done.
func (s *Stream) Watch(ctx context.Context, key string, rev int64, opts ...clientv3.OpOption) (wch clientv3.WatchChan, stop func()) {
	return s.s.watch(ctx, key, rev, opts...)
}

// Hear records an answer on the stream — or the end of a wait of the caller's, during
// which it read nothing from the stream: that is not etcd's silence.
func (s *Stream) Hear() { s.s.hear() }

// Ended returns why the watches on the stream ended when they did not fail:
// ErrWatchSilent, or that the stream was closed.
func (s *Stream) Ended() error { return s.s.ended() }

// Close ends the stream and every watch on it.
func (s *Stream) Close() { s.s.close() }

// Watch is a watch whose creation etcd has confirmed, on a Stream of its own (see
// WatchConfirmed).
type Watch struct {
	w  *watching
	st *Stream
}

// WatchConfirmed watches key from rev — a revision the store has reached, that of a
// read — under ctx, on a Stream of its own given up after twice callTimeout, and returns
// once etcd has confirmed the watch. Its creation is hedged (see watchConfirmed): a
// watch not confirmed after callTimeout is made again on another stream, which the
// client opens through its next endpoint, and the first confirmed is kept, so that a
// watch made again after one given up as silent does not go through the silent member
// again, every time.
func WatchConfirmed(ctx context.Context, cli *clientv3.Client, callTimeout time.Duration, key string, rev int64, opts ...clientv3.OpOption) (*Watch, error) {
	w, err := watchConfirmed(ctx, callTimeout, ownStream(cli, 2*callTimeout), (*stream).close, key, rev, opts...)
	if err != nil {
		return nil, err
	}
	return &Watch{w: w, st: &Stream{w.st}}, nil
}

// Chan returns the watch's responses after the one that confirmed it; pass every one to
// the Stream's Hear.
func (w *Watch) Chan() clientv3.WatchChan { return w.w.wch }

// Stream returns the stream the watch is on.
func (w *Watch) Stream() *Stream { return w.st }

// Close ends the watch and its stream.
func (w *Watch) Close() { w.w.close() }
