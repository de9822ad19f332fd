package store

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// formatKey and formatValue mark a file as this package's, so a foreign bbolt file is
// refused rather than written into.
var (
	bucketMeta          = []byte("meta")
	bucketAlerts        = []byte("alerts")
	bucketGroups        = []byte("groups")
	bucketNotifications = []byte("notifications")
	bucketTransitions   = []byte("alert_history") // keys: sequence (8 bytes)
	bucketSilences      = []byte("silences")
	bucketBenchmarks    = []byte("benchmarks")
	bucketMaintenance   = []byte("maintenance")
	bucketHealth        = []byte("health")  // a bucket per cluster, keys time(8) + member
	bucketMetrics       = []byte("metrics") // the same
	// The Data of history records, apart (same layout and keys), so that reading a
	// day's values in steps does not parse every record's full JSON: a record keeps
	// its Data inline only when written before this layout.
	bucketHealthData  = []byte("health-data")
	bucketMetricsData = []byte("metrics-data")
	formatKey         = []byte("format")
	formatValue       = []byte("etcd-monitor/store/v1")
)

// Bolt is the embedded Store: one bbolt file. Use Open.
type Bolt struct {
	path string
	opts options

	mu     sync.RWMutex
	db     *bolt.DB
	closed bool
	// swept is when each history bucket's every cluster was last held to the retention;
	// it is read and written in write transactions only, which bbolt runs one at a time.
	swept      map[string]time.Time
	sweepEvery time.Duration
	// deflater packs history Data; like swept it is used in write transactions only. One
	// is 650 KB, most of it the compressor's hash tables.
	deflater *flate.Writer
}

// sweepEvery is how often a history write also deletes the expired records of the
// clusters it does not write (a write deletes those of the clusters it writes).
const sweepEvery = time.Minute

var (
	_ Store          = (*Bolt)(nil)
	_ AlertHistorian = (*Bolt)(nil)
)

// Open opens the state file at path, creating it (mode 0600) when it does not exist.
// A file that cannot be opened, created or written, is not a state file, or is locked
// by another process for longer than the lock timeout is an error naming path; Open
// never replaces or resets it.
func Open(path string, opts ...Option) (*Bolt, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalidArgument)
	}
	o, err := apply(opts)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("%w: %s: %w", ErrLocked, path, err)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			var n int
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { n++; return nil })
			if n > 0 {
				return fmt.Errorf("%w: %s: a bbolt file of another program (no %q bucket)", ErrCorrupt, path, bucketMeta)
			}
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(formatKey, formatValue); err != nil {
				return err
			}
		} else if v := meta.Get(formatKey); string(v) != string(formatValue) {
			return fmt.Errorf("%w: %s: format %q, want %q", ErrCorrupt, path, v, formatValue)
		}
		for _, b := range [][]byte{bucketAlerts, bucketGroups, bucketNotifications, bucketSilences, bucketBenchmarks,
			bucketMaintenance, bucketHealth, bucketMetrics, bucketTransitions, bucketHealthData, bucketMetricsData} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		if errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		return nil, fmt.Errorf("store: initialise %s: %w", path, err)
	}
	return &Bolt{path: path, opts: o, db: db, sweepEvery: sweepEvery}, nil
}

// Path returns the file's path.
func (b *Bolt) Path() string { return b.path }

func (b *Bolt) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return b.db.View(fn)
}

func (b *Bolt) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	if err := b.db.Update(fn); err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("store: write %s: %w", b.path, err)
	}
	return nil
}

func put(bk *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: encode %s: %w", ErrInvalidArgument, key, err)
	}
	return bk.Put(key, data)
}

// decodeAll decodes every value of a bucket; a value that does not decode is ErrCorrupt
// naming the file, the bucket and the key.
func decodeAll[T any](path string, tx *bolt.Tx, bucket []byte) ([]T, error) {
	var out []T
	err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		var t T
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("%w: %s: %s/%q: %w", ErrCorrupt, path, bucket, k, err)
		}
		out = append(out, t)
		return nil
	})
	return out, err
}

// Alerts implements Store.
func (b *Bolt) Alerts(ctx context.Context) (out []Alert, err error) {
	err = b.view(ctx, func(tx *bolt.Tx) error {
		out, err = decodeAll[Alert](b.path, tx, bucketAlerts)
		return err
	})
	return out, err
}

// PutAlerts implements Store.
func (b *Bolt) PutAlerts(ctx context.Context, puts []Alert, del []string) error {
	for i, a := range puts {
		if a.Fingerprint == "" {
			return fmt.Errorf("%w: put[%d].fingerprint is empty", ErrInvalidArgument, i)
		}
	}
	if len(puts) == 0 && len(del) == 0 {
		return nil
	}
	return b.update(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketAlerts)
		before := make(map[string]Alert, len(puts)+len(del))
		read := func(fp string) error {
			v := bk.Get([]byte(fp))
			if v == nil {
				return nil
			}
			var a Alert
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("%w: %s: %s/%s: %w", ErrCorrupt, b.path, bucketAlerts, fp, err)
			}
			before[fp] = a
			return nil
		}
		for _, fp := range del {
			if err := read(fp); err != nil {
				return err
			}
			if err := bk.Delete([]byte(fp)); err != nil {
				return err
			}
		}
		for _, a := range puts {
			if _, ok := before[a.Fingerprint]; !ok {
				if err := read(a.Fingerprint); err != nil {
					return err
				}
			}
			if err := put(bk, []byte(a.Fingerprint), a); err != nil {
				return err
			}
		}
		for _, tr := range Transitions(before, puts, del, time.Now()) {
			if err := b.appendSeq(tx.Bucket(bucketTransitions), func(seq uint64) any { tr.ID = seq; return tr }); err != nil {
				return err
			}
		}
		return nil
	})
}

// appendSeq appends the value rec makes of the bucket's next sequence, and drops the
// records beyond the notification bound, oldest first (keys are increasing sequences).
func (b *Bolt) appendSeq(bk *bolt.Bucket, rec func(seq uint64) any) error {
	seq, err := bk.NextSequence()
	if err != nil {
		return err
	}
	if err := put(bk, binary.BigEndian.AppendUint64(nil, seq), rec(seq)); err != nil {
		return err
	}
	if seq > uint64(b.opts.maxNotifications) {
		keep := binary.BigEndian.AppendUint64(nil, seq-uint64(b.opts.maxNotifications)+1)
		c := bk.Cursor()
		for k, _ := c.First(); k != nil && string(k) < string(keep); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

// AlertHistory implements AlertHistorian.
func (b *Bolt) AlertHistory(ctx context.Context, q AlertHistoryQuery) (out []AlertTransition, err error) {
	err = b.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTransitions).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limitOr(q.Limit); k, v = c.Prev() {
			var tr AlertTransition
			if err := json.Unmarshal(v, &tr); err != nil {
				return fmt.Errorf("%w: %s: %s/%x: %w", ErrCorrupt, b.path, bucketTransitions, k, err)
			}
			if matchTransition(tr, q) {
				out = append(out, tr)
			}
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

// Groups implements Store.
func (b *Bolt) Groups(ctx context.Context) (out []Group, err error) {
	err = b.view(ctx, func(tx *bolt.Tx) error {
		out, err = decodeAll[Group](b.path, tx, bucketGroups)
		return err
	})
	return out, err
}

// PutGroup implements Store.
func (b *Bolt) PutGroup(ctx context.Context, g Group) error {
	if g.Receiver == "" {
		return fmt.Errorf("%w: group receiver is empty", ErrInvalidArgument)
	}
	return b.update(ctx, func(tx *bolt.Tx) error {
		return put(tx.Bucket(bucketGroups), []byte(groupID(g.Receiver, g.GroupKey)), g)
	})
}

// DeleteGroup implements Store.
func (b *Bolt) DeleteGroup(ctx context.Context, receiver, key string) error {
	return b.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketGroups).Delete([]byte(groupID(receiver, key)))
	})
}

// AppendNotification implements Store.
func (b *Bolt) AppendNotification(ctx context.Context, n Notification) (Notification, error) {
	err := b.update(ctx, func(tx *bolt.Tx) error {
		return b.appendSeq(tx.Bucket(bucketNotifications), func(seq uint64) any { n.ID = seq; return n })
	})
	return n, err
}

// Notifications implements Store.
func (b *Bolt) Notifications(ctx context.Context, q NotificationQuery) (out []Notification, err error) {
	err = b.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketNotifications).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limitOr(q.Limit); k, v = c.Prev() {
			var n Notification
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("%w: %s: %s/%x: %w", ErrCorrupt, b.path, bucketNotifications, k, err)
			}
			if matchNotification(n, q) {
				out = append(out, n)
			}
		}
		return nil
	})
	return out, err
}

// Silences implements Store.
func (b *Bolt) Silences(ctx context.Context) (out []Silence, err error) {
	err = b.view(ctx, func(tx *bolt.Tx) error {
		out, err = decodeAll[Silence](b.path, tx, bucketSilences)
		return err
	})
	return out, err
}

// PutSilence implements Store.
func (b *Bolt) PutSilence(ctx context.Context, s Silence) error {
	if s.ID == "" {
		return fmt.Errorf("%w: silence id is empty", ErrInvalidArgument)
	}
	return b.update(ctx, func(tx *bolt.Tx) error { return put(tx.Bucket(bucketSilences), []byte(s.ID), s) })
}

// DeleteSilence implements Store.
func (b *Bolt) DeleteSilence(ctx context.Context, id string) error {
	return b.update(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketSilences)
		if bk.Get([]byte(id)) == nil {
			return fmt.Errorf("%w: silence %q", ErrNotFound, id)
		}
		return bk.Delete([]byte(id))
	})
}

// PutBenchmark implements Store.
func (b *Bolt) PutBenchmark(ctx context.Context, bm Benchmark) error {
	if bm.ID == "" {
		return fmt.Errorf("%w: benchmark id is empty", ErrInvalidArgument)
	}
	return b.update(ctx, func(tx *bolt.Tx) error { return put(tx.Bucket(bucketBenchmarks), []byte(bm.ID), bm) })
}

// Benchmarks implements Store.
func (b *Bolt) Benchmarks(ctx context.Context, q BenchmarkQuery) (out []Benchmark, err error) {
	err = b.view(ctx, func(tx *bolt.Tx) error {
		out, err = decodeAll[Benchmark](b.path, tx, bucketBenchmarks)
		return err
	})
	return selectBenchmarks(out, q), err
}

// PutHealthChecks implements Store.
func (b *Bolt) PutHealthChecks(ctx context.Context, checks []HealthCheck) error {
	in, err := validSamples(checks, fromHealth)
	if err != nil {
		return err
	}
	return b.putSamples(ctx, bucketHealth, in)
}

// HealthChecks implements Store.
func (b *Bolt) HealthChecks(ctx context.Context, q HistoryQuery) ([]HealthCheck, error) {
	out, err := b.samples(ctx, bucketHealth, q, false)
	return convert(out, sample.health), err
}

// PutMetricSnapshots implements Store.
func (b *Bolt) PutMetricSnapshots(ctx context.Context, snaps []MetricSnapshot) error {
	in, err := validSamples(snaps, fromMetric)
	if err != nil {
		return err
	}
	return b.putSamples(ctx, bucketMetrics, in)
}

// MetricSnapshots implements Store.
func (b *Bolt) MetricSnapshots(ctx context.Context, q HistoryQuery) ([]MetricSnapshot, error) {
	out, err := b.samples(ctx, bucketMetrics, q, true)
	return convert(out, sample.metric), err
}

// dataBucket names the bucket of the Data of bucket's records.
func dataBucket(bucket []byte) []byte {
	if bytes.Equal(bucket, bucketHealth) {
		return bucketHealthData
	}
	return bucketMetricsData
}

// sampleKey is the key of a record of member at t: t's nanoseconds since the Unix
// epoch, big-endian, then the member. A time outside the records' range (the epoch to
// MaxRecordTime: a query's bound, a retention cutoff) takes the key of the nearer end,
// where UnixNano would wrap.
func sampleKey(t time.Time, member string) []byte {
	var ns int64
	switch {
	case t.Before(time.Unix(0, 0)):
		ns = 0
	case t.After(MaxRecordTime):
		ns = math.MaxInt64
	default:
		ns = t.UnixNano()
	}
	return append(binary.BigEndian.AppendUint64(nil, uint64(ns)), member...)
}

func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC()
}

func (b *Bolt) putSamples(ctx context.Context, bucket []byte, in []sample) error {
	if len(in) == 0 {
		return nil
	}
	cutoff := sampleKey(time.Now().Add(-b.opts.retention), "")
	return b.update(ctx, func(tx *bolt.Tx) error {
		root, dataRoot := tx.Bucket(bucket), tx.Bucket(dataBucket(bucket))
		type pair struct{ bk, data *bolt.Bucket }
		touched := map[string]pair{}
		for _, s := range in {
			p, ok := touched[s.Cluster]
			if !ok {
				var err error
				if p.bk, err = root.CreateBucketIfNotExists([]byte(s.Cluster)); err != nil {
					return err
				}
				if p.data, err = dataRoot.CreateBucketIfNotExists([]byte(s.Cluster)); err != nil {
					return err
				}
				touched[s.Cluster] = p
			}
			key := sampleKey(s.Time, s.Member)
			data := s.Data
			s.Data = nil
			if err := put(p.bk, key, s); err != nil {
				return err
			}
			var err error
			if len(data) > 0 {
				err = p.data.Put(key, b.packData(data))
			} else {
				err = p.data.Delete(key) // a record replaced by one without data
			}
			if err != nil {
				return err
			}
		}
		var clusters [][]byte
		if now := time.Now(); now.Sub(b.swept[string(bucket)]) >= b.sweepEvery {
			if b.swept == nil {
				b.swept = map[string]time.Time{}
			}
			b.swept[string(bucket)] = now
			if err := root.ForEachBucket(func(name []byte) error {
				clusters = append(clusters, bytes.Clone(name))
				return nil
			}); err != nil {
				return err
			}
		} else {
			for name := range touched {
				clusters = append(clusters, []byte(name))
			}
		}
		err := retain(root, dataRoot, cutoff, clusters)
		releaseMapped(b.db, tx.Size())
		return err
	})
}

// retain deletes the records before cutoff of clusters (keys are time-ordered, so the
// expired ones are at the front), and the buckets of those left without records.
func retain(root, dataRoot *bolt.Bucket, cutoff []byte, clusters [][]byte) error {
	for _, name := range clusters {
		for _, bk := range []*bolt.Bucket{root.Bucket(name), dataRoot.Bucket(name)} {
			if bk == nil {
				continue
			}
			c := bk.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, cutoff) < 0; k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		if k, _ := root.Bucket(name).Cursor().First(); k == nil {
			if err := root.DeleteBucket(name); err != nil {
				return err
			}
			if err := dataRoot.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
		}
	}
	return nil
}

// A history record's Data (JSON) of at least packMin bytes is stored deflated, behind
// packedData, a byte JSON never starts with: a snapshot's 8 KB become about 1.8 KB, so
// the file, and the pages of it the process has read (bbolt reads a leaf's values
// again each time it adds a key to it), are a fifth of the size. Values stored raw
// (smaller, or written before) read as they are.
const (
	packedData = 0x01
	packMin    = 512
)

var inflaters = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// maxUnpacked bounds the Data one stored record inflates to.
const maxUnpacked = 64 << 20

// packData returns data as it is stored. It runs in write transactions only.
func (b *Bolt) packData(data []byte) []byte {
	if len(data) < packMin {
		return data
	}
	var buf bytes.Buffer
	buf.Grow(len(data) / 3)
	buf.WriteByte(packedData)
	if b.deflater == nil {
		b.deflater, _ = flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level
	}
	w := b.deflater
	w.Reset(&buf)
	if _, err := w.Write(data); err != nil || w.Close() != nil || buf.Len() >= len(data) {
		return data // writes to a bytes.Buffer do not fail; incompressible data stays raw
	}
	return buf.Bytes()
}

// unpackData returns a copy of the Data stored as d.
func unpackData(d []byte) (json.RawMessage, error) {
	if len(d) == 0 || d[0] != packedData {
		return bytes.Clone(d), nil
	}
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(d[1:]), nil); err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(r, maxUnpacked+1))
	if err == nil && len(out) > maxUnpacked {
		err = fmt.Errorf("data inflates past %d bytes", maxUnpacked)
	}
	return out, err
}

func (b *Bolt) samples(ctx context.Context, bucket []byte, q HistoryQuery, members bool) ([]sample, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	limit := q.EffectiveLimit()
	var all []sample
	err := b.view(ctx, func(tx *bolt.Tx) error {
		root, dataRoot := tx.Bucket(bucket), tx.Bucket(dataBucket(bucket))
		return root.ForEachBucket(func(name []byte) error {
			if q.Cluster != "" && string(name) != q.Cluster {
				return nil
			}
			data := dataRoot.Bucket(name)
			// Data is read only for the records returned: every one without a step, the
			// last of each step (of each member) with one.
			lastWithData := map[string]time.Time{}
			// Newest first from Until, stopping once the cluster alone fills the limit
			// (in whole steps when downsampling).
			c := root.Bucket(name).Cursor()
			var k, v []byte
			if q.Until.IsZero() || q.Until.After(MaxRecordTime) {
				k, v = c.Last()
			} else if k, v = c.Seek(sampleKey(q.Until, "")); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
			n, steps := 0, 0
			var lastStep time.Time
			for ; k != nil; k, v = c.Prev() {
				t := keyTime(k)
				if !q.Since.IsZero() && t.Before(q.Since) {
					break
				}
				if members && q.Member != "" && string(k[8:]) != q.Member {
					continue
				}
				if q.Step > 0 {
					if st := StepStart(t, q.Step); steps == 0 || !st.Equal(lastStep) {
						if steps++; steps > limit {
							break
						}
						lastStep = st
					}
				} else if n++; n > limit {
					break
				}
				var s sample
				if err := json.Unmarshal(v, &s); err != nil {
					return fmt.Errorf("%w: %s: %s/%s/%x: %w", ErrCorrupt, b.path, bucket, name, k, err)
				}
				if s.Data == nil && data != nil {
					want := q.Step == 0
					if !want {
						st, seen := lastWithData[s.Member]
						want = !seen || !StepStart(t, q.Step).Equal(st)
						if want {
							lastWithData[s.Member] = StepStart(t, q.Step)
						}
					}
					if d := data.Get(k); want && d != nil {
						unpacked, err := unpackData(d)
						if err != nil {
							return fmt.Errorf("%w: %s: %s/%s/%x: %w", ErrCorrupt, b.path, dataBucket(bucket), name, k, err)
						}
						s.Data = unpacked
					}
				}
				all = append(all, s)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return selectSamples(all, q, members), nil
}

// PutMaintenanceOp implements Store.
func (b *Bolt) PutMaintenanceOp(ctx context.Context, op MaintenanceOp) error {
	if err := op.Validate(); err != nil {
		return err
	}
	return b.update(ctx, func(tx *bolt.Tx) error { return put(tx.Bucket(bucketMaintenance), []byte(op.ID), op) })
}

// MaintenanceOps implements Store.
func (b *Bolt) MaintenanceOps(ctx context.Context, q MaintenanceQuery) (out []MaintenanceOp, err error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	err = b.view(ctx, func(tx *bolt.Tx) error {
		out, err = decodeAll[MaintenanceOp](b.path, tx, bucketMaintenance)
		return err
	})
	return selectMaintenance(out, q), err
}

// Close implements Store: it releases the file and its lock. Idempotent.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", b.path, err)
	}
	return nil
}
