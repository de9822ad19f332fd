package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Limiter is one instance's share of a rate limit kept in etcd as a token bucket. It is
// safe for concurrent use.
type Limiter struct {
	cli   *clientv3.Client
	key   string
	rate  float64 // tokens per second
	o     options
	fetch sync.Mutex // one round trip at a time

	mu     sync.Mutex
	tokens int // taken from the bucket, not yet spent
	closed bool
	// The bucket as last read or written, for a compare-and-swap without reading first,
	// and when.
	seen    bucket
	seenRev int64
	seenAt  time.Time
}

// recheck is how old the view of the bucket may be for Allow to say no on it without
// reading it again: tokens given back meanwhile by other instances are seen after it.
// A limited instance reads the bucket at most once per recheck.
const recheck = 100 * time.Millisecond

// bucket is the shared state: the tokens in the bucket at the instant last (by the clock
// of the instance that wrote it), before refill.
type bucket struct {
	level float64
	last  time.Time
}

func (b bucket) String() string {
	return strconv.FormatFloat(b.level, 'g', -1, 64) + "," + strconv.FormatInt(b.last.UnixNano(), 10)
}

func parse(v []byte) (bucket, error) {
	l, t, ok := strings.Cut(string(v), ",")
	if !ok {
		return bucket{}, ErrMalformed
	}
	level, err := strconv.ParseFloat(l, 64)
	if err != nil {
		return bucket{}, ErrMalformed
	}
	ns, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return bucket{}, ErrMalformed
	}
	return bucket{level: level, last: time.Unix(0, ns)}, nil
}

// New returns a Limiter that admits, across every instance using key, limit events per
// period. It does not block and starts no goroutine.
func New(cli *clientv3.Client, key string, limit int, per time.Duration, opts ...Option) (*Limiter, error) {
	switch {
	case cli == nil:
		return nil, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	case key == "":
		return nil, fmt.Errorf("%w: empty key", ErrInvalidArgument)
	case limit < 1:
		return nil, fmt.Errorf("%w: limit %d is under 1", ErrInvalidArgument, limit)
	case per <= 0:
		return nil, fmt.Errorf("%w: period %v is not positive", ErrInvalidArgument, per)
	}
	o := options{burst: limit, batch: max(1, limit/20), logger: zap.NewNop()}
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	if err := o.validate(limit); err != nil {
		return nil, err
	}
	return &Limiter{cli: cli, key: key, rate: float64(limit) / per.Seconds(), o: o}, nil
}

// Allow takes one token if the fleet has one: from this instance's batch, or else from
// etcd in one round trip. It reports false, without waiting, when the bucket is empty:
// as etcd holds it, or as this instance read or wrote it less than 100ms ago (tokens
// given back since by another instance's Close are seen after that), refilled since.
func (l *Limiter) Allow(ctx context.Context) (bool, error) {
	ok, _, err := l.take(ctx, 1)
	return ok, err
}

// Wait takes one token, waiting for the bucket to refill if need be, until ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		// Waiting callers take whole batches, so that a busy fleet makes one round
		// trip per batch rather than one per token as it trickles back.
		ok, wait, err := l.take(ctx, l.o.batch)
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// take spends a local token, fetching a batch if there is none. If the bucket holds
// fewer than need tokens it returns how long until it does.
func (l *Limiter) take(ctx context.Context, need int) (bool, time.Duration, error) {
	if ok, err := l.spend(); ok || err != nil {
		return ok, 0, err
	}
	l.fetch.Lock()
	defer l.fetch.Unlock()
	if ok, err := l.spend(); ok || err != nil { // another caller fetched meanwhile
		return ok, 0, err
	}
	n, wait, err := l.withdraw(ctx, need)
	if err != nil || n == 0 {
		return false, wait, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.mu.Unlock()
		l.deposit(context.WithoutCancel(ctx), n)
		l.mu.Lock()
		return false, 0, ErrClosed
	}
	l.tokens += n - 1
	return true, 0, nil
}

func (l *Limiter) spend() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, ErrClosed
	}
	if l.tokens > 0 {
		l.tokens--
		return true, nil
	}
	return false, nil
}

// refill returns the bucket as it stands at now.
func (l *Limiter) refill(b bucket, now time.Time, exists bool) bucket {
	if !exists {
		return bucket{level: float64(l.o.burst), last: now}
	}
	if now.After(b.last) {
		b.level = math.Min(float64(l.o.burst), b.level+now.Sub(b.last).Seconds()*l.rate)
		b.last = now
	}
	return b
}

// update applies fn to the bucket with a compare-and-swap, retrying on conflict. fn
// returns the new bucket, or false to leave the bucket as it is (then update makes no
// round trip if it has read the bucket before).
func (l *Limiter) update(ctx context.Context, fn func(cur bucket) (bucket, bool)) error {
	l.mu.Lock()
	seen, rev, at := l.seen, l.seenRev, l.seenAt
	l.mu.Unlock()
	for {
		now := time.Now()
		next, write := fn(l.refill(seen, now, rev != 0))
		if !write && rev != 0 {
			if now.Sub(at) < recheck {
				return nil
			}
			// The view is old: other instances may have given tokens back. Read again.
			resp, err := l.cli.Get(ctx, l.key)
			if err != nil {
				return err
			}
			seen, rev, at = bucket{}, 0, now
			if len(resp.Kvs) == 1 {
				if seen, err = parse(resp.Kvs[0].Value); err != nil {
					return fmt.Errorf("%w: %s", err, l.key)
				}
				rev = resp.Kvs[0].ModRevision
			}
			l.mu.Lock()
			l.seen, l.seenRev, l.seenAt = seen, rev, at
			l.mu.Unlock()
			continue
		}
		resp, err := l.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(l.key), "=", rev),
		).Then(clientv3.OpPut(l.key, next.String())).Else(clientv3.OpGet(l.key)).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			l.mu.Lock()
			l.seen, l.seenRev, l.seenAt = next, resp.Header.Revision, now
			l.mu.Unlock()
			return nil
		}
		at = time.Now()
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			seen, rev = bucket{}, 0
			continue
		}
		if seen, err = parse(kvs[0].Value); err != nil {
			return fmt.Errorf("%w: %s", err, l.key)
		}
		rev = kvs[0].ModRevision
		l.mu.Lock()
		l.seen, l.seenRev, l.seenAt = seen, rev, at
		l.mu.Unlock()
	}
}

// withdraw takes up to a batch from the bucket, if it holds at least need tokens;
// otherwise it returns how long until it does.
func (l *Limiter) withdraw(ctx context.Context, need int) (int, time.Duration, error) {
	var n int
	var wait time.Duration
	err := l.update(ctx, func(b bucket) (bucket, bool) {
		n = min(l.o.batch, int(math.Floor(b.level)))
		if n < need {
			n = 0
			// Clamped before the conversion: past MaxInt64 nanoseconds it overflows.
			w := (float64(need) - b.level) / l.rate * float64(time.Second)
			wait = time.Duration(math.Max(float64(time.Millisecond), math.Min(w, float64(math.MaxInt64/2))))
			return b, false
		}
		b.level -= float64(n)
		return b, true
	})
	if err != nil {
		return 0, 0, err
	}
	return n, wait, nil
}

// deposit gives n unspent tokens back to the bucket.
func (l *Limiter) deposit(ctx context.Context, n int) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := l.update(ctx, func(b bucket) (bucket, bool) {
		b.level = math.Min(float64(l.o.burst), b.level+float64(n))
		return b, true
	}); err != nil {
		l.o.logger.Warn("ratelimit: could not give tokens back", zap.String("key", l.key), zap.Int("tokens", n), zap.Error(err))
	}
}

// Tokens returns how many tokens this instance holds, taken from the bucket and not yet
// spent.
func (l *Limiter) Tokens() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tokens
}

// Close gives this instance's unspent tokens back to the bucket (waiting at most two
// seconds for etcd; if that fails they are lost, which only lowers the rate) and makes
// later calls return ErrClosed. It is idempotent.
func (l *Limiter) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	n := l.tokens
	l.tokens = 0
	l.mu.Unlock()
	if n > 0 {
		l.deposit(context.Background(), n)
	}
	return nil
}
