package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"
)

// Latencies are recorded in microseconds from 1µs to a minute with three significant
// digits; longer operations are recorded as a minute.
const (
	histMin  = 1
	histMax  = int64(time.Minute / time.Microsecond)
	histSigs = 3
)

// recorder accumulates the latencies of one kind of operation on one worker; it is not
// shared, so recording takes no lock.
type recorder struct {
	hist      *hdrhistogram.Histogram
	successes int64
	failures  int64
	min, max  time.Duration
	sum, sq   float64 // seconds and seconds², for the exact mean and deviation
	buckets   [len(bucketBounds) + 1]int64
	errors    map[string]int64
}

func newRecorder() *recorder {
	return &recorder{hist: hdrhistogram.New(histMin, histMax, histSigs), min: math.MaxInt64, errors: map[string]int64{}}
}

func (r *recorder) record(d time.Duration, err error) {
	if err != nil {
		r.failures++
		r.errors[classify(err)]++
		return
	}
	r.successes++
	us := max(d.Microseconds(), histMin)
	_ = r.hist.RecordValue(min(us, histMax)) // in range by construction
	r.min = min(r.min, d)
	r.max = max(r.max, d)
	s := d.Seconds()
	r.sum += s
	r.sq += s * s
	b := 0
	for b < len(bucketBounds) && d >= bucketBounds[b] {
		b++
	}
	r.buckets[b]++
}

func (r *recorder) merge(o *recorder) {
	r.hist.Merge(o.hist)
	r.successes += o.successes
	r.failures += o.failures
	r.min = min(r.min, o.min)
	r.max = max(r.max, o.max)
	r.sum += o.sum
	r.sq += o.sq
	for i := range r.buckets {
		r.buckets[i] += o.buckets[i]
	}
	for k, v := range o.errors {
		r.errors[k] += v
	}
}

// classify names an error by what an operator would look for: the etcd error message,
// the gRPC code, or a timeout.
func classify(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Error()
	}
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	return fmt.Sprintf("%T", err)
}

// shards hold the recorders of a run. Workers share them, a few workers to a shard, so
// that the memory of a run does not grow with its workers (a recorder's histogram is a
// few hundred kilobytes); a shard's lock is held only to record one latency.
type shards struct {
	s []*shard
	n int
}

type shard struct {
	mu            sync.Mutex
	reads, writes *recorder
}

// maxShards bounds the recorders of a run, whatever its number of workers.
func maxShards() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

func newShards(workers int) *shards {
	s := &shards{s: make([]*shard, min(workers, maxShards()))}
	for i := range s.s {
		s.s[i] = &shard{reads: newRecorder(), writes: newRecorder()}
	}
	return s
}

// next returns the shard of the next worker.
func (s *shards) next() *shard {
	sh := s.s[s.n%len(s.s)]
	s.n++
	return sh
}

func (s *shards) merge(cfg Config, start time.Time, elapsed time.Duration) *Result {
	reads, writes := newRecorder(), newRecorder()
	for _, sh := range s.s {
		reads.merge(sh.reads)
		writes.merge(sh.writes)
	}
	return merge(cfg, start, elapsed, reads, writes)
}

// worker issues operations on one connection, one at a time.
type worker struct {
	cfg       Config
	kv        clientv3.KV
	ks        keySpace
	value     string
	populated int64
	rng       *rand.Rand
	getOpts   []clientv3.OpOption
	rangeOpts []clientv3.OpOption
	shard     *shard
	guard     *guard
	putCost   int64
}

func newWorker(cfg Config, c *clientv3.Client, ks keySpace, value string, populated int, sh *shard, g *guard) *worker {
	w := &worker{
		cfg:       cfg,
		kv:        c.KV,
		ks:        ks,
		value:     value,
		populated: int64(populated),
		rng:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		shard:     sh,
		guard:     g,
		putCost:   putCost(cfg.KeySize, cfg.ValueSize),
	}
	if cfg.Consistency == Serializable {
		w.getOpts = append(w.getOpts, clientv3.WithSerializable())
	}
	w.rangeOpts = append([]clientv3.OpOption{clientv3.WithRange(ks.end()), clientv3.WithLimit(int64(cfg.RangeLimit))}, w.getOpts...)
	return w
}

// do issues operation i and records it. It returns false, issuing nothing, when the
// quota guard refuses the write.
func (w *worker) do(ctx context.Context, i int64) bool {
	var (
		read bool
		key  string
	)
	switch w.cfg.Workload {
	case Read, Range:
		read = true
	case Mixed:
		key = w.ks.key(w.rng.Int64N(w.populated))
		read = w.rng.Float64() < w.cfg.ReadRatio
	}
	if !read && !w.guard.reserve(writeCost(w.cfg)) {
		return false
	}
	// An operation is not cut short when ctx ends: one the client abandoned could still
	// be applied after the cleanup and leave a key behind. OpTimeout bounds it.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.OpTimeout)
	defer cancel()
	var (
		err  error
		from = time.Now()
	)
	switch w.cfg.Workload {
	case Write:
		_, err = w.kv.Put(octx, w.ks.key(i), w.value)
	case Read:
		_, err = w.kv.Get(octx, w.ks.key(w.rng.Int64N(w.populated)), w.getOpts...)
	case Mixed:
		if read {
			_, err = w.kv.Get(octx, key, w.getOpts...)
		} else {
			_, err = w.kv.Put(octx, key, w.value)
		}
	case Range:
		_, err = w.kv.Get(octx, w.ks.key(w.rng.Int64N(w.populated)), w.rangeOpts...)
	case Delete:
		_, err = w.kv.Delete(octx, w.ks.key(i%w.populated))
	case Txn:
		n := int64(w.cfg.TxnOps)
		ops := make([]clientv3.Op, n)
		for j := range n {
			ops[j] = clientv3.OpPut(w.ks.key(i*n+j), w.value)
		}
		_, err = w.kv.Txn(octx).Then(ops...).Commit()
	}
	d := time.Since(from)
	w.shard.mu.Lock()
	if read {
		w.shard.reads.record(d, err)
	} else {
		w.shard.writes.record(d, err)
	}
	w.shard.mu.Unlock()
	return true
}
