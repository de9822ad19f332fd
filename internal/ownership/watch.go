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
// made again, on a new stream, may go through another endpoint.
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
func (s *stream) hear() { s.heard.Store(int64(time.Since(s.start))) }

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

// joinStream returns the stream that the session's holdings watch their keys on (see
// Holding.monitor), opening one if none is open or the last was given up as silent: one
// for all the holdings of a session, however many, given up after twice CallTimeout —
// the silence after which a wait's watch is reopened. Call leaveStream when the watch
// made on it has ended.
func (s *Session) joinStream() *stream {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watches == nil || s.watches.ctx.Err() != nil {
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
