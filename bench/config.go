package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Workload is the kind of operation a run issues.
type Workload string

// The workloads. Read, Mixed and Range run over keys written before the clock starts;
// Delete deletes keys written before the clock starts.
const (
	Write  Workload = "write"  // puts to sequential keys
	Read   Workload = "read"   // gets of random pre-populated keys
	Mixed  Workload = "mixed"  // ReadRatio gets, the rest puts, over pre-populated keys
	Range  Workload = "range"  // range gets of RangeLimit keys from a random start
	Delete Workload = "delete" // deletes of sequential pre-populated keys
	Txn    Workload = "txn"    // transactions putting TxnOps sequential keys each
)

// Workloads lists every workload, in the order the documentation gives them.
var Workloads = []Workload{Write, Read, Mixed, Range, Delete, Txn}

// ParseWorkload returns the workload named s, or a *ConfigError.
func ParseWorkload(s string) (Workload, error) {
	for _, w := range Workloads {
		if string(w) == strings.ToLower(strings.TrimSpace(s)) {
			return w, nil
		}
	}
	return "", &ConfigError{Field: "workload", Reason: fmt.Sprintf("unknown workload %q (want one of write, read, mixed, range, delete, txn)", s)}
}

// reads reports whether the workload issues reads; writes whether it issues writes.
func (w Workload) reads() bool  { return w == Read || w == Mixed || w == Range }
func (w Workload) writes() bool { return w == Write || w == Mixed || w == Delete || w == Txn }

// Consistency selects how reads are served.
type Consistency string

const (
	// Linearizable reads go through raft and see every write acknowledged before them.
	Linearizable Consistency = "linearizable"
	// Serializable reads are served by the member the connection reaches, possibly stale.
	Serializable Consistency = "serializable"
)

// Config describes one run. The zero value of a field means its default; negative or
// contradictory values make Run return a *ConfigError naming the field.
type Config struct {
	// Workload is required.
	Workload Workload `json:"workload"`
	// Connections is the number of gRPC connections, each its own client. Default 10.
	Connections int `json:"connections,omitempty"`
	// Clients is the number of concurrent workers on each connection. Default 10.
	Clients int `json:"clients,omitempty"`
	// KeySize is the length of every key in bytes, prefix included. Default 32.
	KeySize int `json:"keySize,omitempty"`
	// ValueSize is the length of every written value in bytes. Default 256.
	ValueSize int `json:"valueSize,omitempty"`
	// Ops is the number of operations to issue. When both Ops and Duration are zero, Ops
	// is 10,000; when both are set the run stops at whichever comes first.
	Ops int `json:"ops,omitempty"`
	// Duration bounds the run by time (durationSeconds in JSON).
	Duration time.Duration `json:"-"`
	// Rate caps the operations per second across all workers; zero means unlimited.
	Rate float64 `json:"rate,omitempty"`
	// ReadRatio is the share of reads in the Mixed workload. Default 0.7.
	ReadRatio float64 `json:"readRatio,omitempty"`
	// KeySpace is the number of keys written before a Read, Mixed or Range run, and
	// before a Delete run bounded by Duration. Default 1,000.
	KeySpace int `json:"keySpace,omitempty"`
	// RangeLimit is the number of keys a Range operation returns. Default 10.
	RangeLimit int `json:"rangeLimit,omitempty"`
	// TxnOps is the number of puts in one Txn operation. Default 4.
	TxnOps int `json:"txnOps,omitempty"`
	// Consistency of reads. Default Linearizable.
	Consistency Consistency `json:"consistency,omitempty"`
	// TargetLeader sends every operation to the current leader only.
	TargetLeader bool `json:"targetLeader,omitempty"`
	// Prefix is where the run's keys live; each run uses a sub-prefix of its own and
	// deletes it afterwards unless KeepKeys is set. Default "/bench/".
	Prefix string `json:"prefix,omitempty"`
	// KeepKeys leaves the run's keys in etcd.
	KeepKeys bool `json:"keepKeys,omitempty"`
	// OpTimeout bounds each operation; one that takes longer counts as a failure.
	// Default 10s.
	OpTimeout time.Duration `json:"-"`
}

// Defaults returns c with every zero field set to its default. It does not validate.
func (c Config) Defaults() Config {
	if c.Connections == 0 {
		c.Connections = 10
	}
	if c.Clients == 0 {
		c.Clients = 10
	}
	if c.KeySize == 0 {
		c.KeySize = 32
	}
	if c.ValueSize == 0 {
		c.ValueSize = 256
	}
	if c.Ops == 0 && c.Duration == 0 {
		c.Ops = 10000
	}
	if c.ReadRatio == 0 {
		c.ReadRatio = 0.7
	}
	if c.KeySpace == 0 {
		c.KeySpace = 1000
	}
	if c.RangeLimit == 0 {
		c.RangeLimit = 10
	}
	if c.TxnOps == 0 {
		c.TxnOps = 4
	}
	if c.Consistency == "" {
		c.Consistency = Linearizable
	}
	if c.Prefix == "" {
		c.Prefix = "/bench/"
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 10 * time.Second
	}
	return c
}

// runIDLen is the length of the per-run sub-prefix: 6 hex digits and a slash.
const runIDLen = 7

// Bounds on a Config. Each is checked on its own before any product of two is formed, so
// no combination of values can overflow; together they bound what one run can cost the
// cluster and this process.
const (
	MaxConnections = 1000
	MaxClients     = 1000 // per connection
	// MaxWorkers bounds Connections × Clients.
	MaxWorkers    = 10000
	MaxKeySize    = 4096
	MaxValueSize  = 1 << 20
	MaxOps        = 100_000_000
	MaxDuration   = 24 * time.Hour
	MaxRate       = 10_000_000
	MaxKeySpace   = 1_000_000
	MaxRangeLimit = 10_000
	MaxTxnOps     = 128
	MaxOpTimeout  = 10 * time.Minute
	// MaxRequestBytes bounds the keys and values one operation sends: etcd's default
	// --max-request-bytes (1.5 MiB) less room for the envelope.
	MaxRequestBytes = 1<<20 + 1<<19 - 4096
	// MaxInFlightBytes bounds Connections × Clients × the bytes one operation sends or
	// receives (a Range returns up to RangeLimit values), so that the workers of one run
	// never hold more than this much at once.
	MaxInFlightBytes = 256 << 20
)

// Validate applies the defaults and reports the first problem as a *ConfigError.
func (c Config) Validate() error {
	c = c.Defaults()
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.Workload == "" {
		return bad("workload", "required (one of write, read, mixed, range, delete, txn)")
	}
	if _, err := ParseWorkload(string(c.Workload)); err != nil {
		return err
	}
	c.Workload, _ = ParseWorkload(string(c.Workload))
	between := func(field string, v, lo, hi int) error {
		if v < lo || v > hi {
			return bad(field, "must be between %d and %d, got %d", lo, hi, v)
		}
		return nil
	}
	for _, b := range []struct {
		field     string
		v, lo, hi int
	}{
		{"connections", c.Connections, 1, MaxConnections},
		{"clients", c.Clients, 1, MaxClients},
		{"keySize", c.KeySize, 1, MaxKeySize},
		{"valueSize", c.ValueSize, 1, MaxValueSize},
		{"ops", c.Ops, 0, MaxOps},
		{"keySpace", c.KeySpace, 1, MaxKeySpace},
		{"rangeLimit", c.RangeLimit, 1, MaxRangeLimit},
		{"txnOps", c.TxnOps, 1, MaxTxnOps},
	} {
		if err := between(b.field, b.v, b.lo, b.hi); err != nil {
			return err
		}
	}
	workers := c.Connections * c.Clients // both bounded above: no overflow
	switch {
	case workers > MaxWorkers:
		return bad("clients", "connections × clients must be at most %d, got %d", MaxWorkers, workers)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return bad("duration", "must be between 0 and %v, got %v", MaxDuration, c.Duration)
	case !(c.Rate >= 0 && c.Rate <= MaxRate): // NaN fails too
		return bad("rate", "must be between 0 and %d, got %v", MaxRate, c.Rate)
	case !(c.ReadRatio >= 0 && c.ReadRatio <= 1):
		return bad("readRatio", "must be between 0 and 1, got %v", c.ReadRatio)
	case c.Consistency != Linearizable && c.Consistency != Serializable:
		return bad("consistency", "must be linearizable or serializable, got %q", c.Consistency)
	case c.OpTimeout < 0 || c.OpTimeout > MaxOpTimeout:
		return bad("opTimeout", "must be between 0 and %v, got %v", MaxOpTimeout, c.OpTimeout)
	case !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/"):
		return bad("prefix", "must start and end with /, got %q", c.Prefix)
	}
	if c.Workload == Delete && c.Ops > MaxKeySpace {
		return bad("ops", "a delete run writes its keys first; at most %d, got %d", MaxKeySpace, c.Ops)
	}
	if n := c.requestBytes(); n > MaxRequestBytes {
		return bad("valueSize", "one operation would send %d bytes of keys and values; etcd's default request limit allows %d", n, MaxRequestBytes)
	}
	if n := int64(workers) * c.opBytes(); n > MaxInFlightBytes {
		return bad("clients", "%d workers × %d bytes per operation = %d bytes in flight; at most %d (fewer workers, smaller values or a smaller rangeLimit)",
			workers, c.opBytes(), n, MaxInFlightBytes)
	}
	room := c.KeySize - len(c.Prefix) - runIDLen
	if need := digits(c.maxIndex()); room < need {
		return bad("keySize", "%d bytes cannot hold prefix %q, a run ID and %d digits", c.KeySize, c.Prefix, need)
	}
	return nil
}

// requestBytes is the size of the keys and values one operation sends.
func (c Config) requestBytes() int64 {
	kv := int64(c.KeySize) + int64(c.ValueSize)
	if c.Workload == Txn {
		return int64(c.TxnOps) * kv
	}
	return kv
}

// opBytes is the most one operation sends or receives.
func (c Config) opBytes() int64 {
	if c.Workload == Range {
		return int64(c.RangeLimit) * (int64(c.KeySize) + int64(c.ValueSize))
	}
	return c.requestBytes()
}

// maxIndex is the largest key index a run can use (a guess for duration-bound write
// runs: a run of a day at a million ops/s).
func (c Config) maxIndex() int64 {
	switch c.Workload {
	case Read, Mixed, Range:
		return int64(c.KeySpace)
	case Delete:
		return int64(max(c.Ops, c.KeySpace))
	}
	n := int64(c.Ops)
	if c.Duration > 0 {
		n = max(n, int64(c.Duration.Seconds()*1e6))
	}
	if c.Workload == Txn {
		n *= int64(c.TxnOps)
	}
	return n
}

func digits(n int64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// configJSON is Config as JSON: durations as seconds (durationSeconds, opTimeoutSeconds,
// the module's one convention). Reading also takes "duration" and "opTimeout" as Go
// duration strings ("5s"), which is how people write them by hand.
type configJSON struct {
	configAlias
	Duration         jsonDuration `json:"duration,omitempty"`
	OpTimeout        jsonDuration `json:"opTimeout,omitempty"`
	DurationSeconds  *float64     `json:"durationSeconds,omitempty"`
	OpTimeoutSeconds *float64     `json:"opTimeoutSeconds,omitempty"`
}

type configAlias Config

// MarshalJSON writes durations in seconds (durationSeconds, opTimeoutSeconds).
func (c Config) MarshalJSON() ([]byte, error) {
	type out struct {
		configAlias
		DurationSeconds  float64 `json:"durationSeconds,omitempty"`
		OpTimeoutSeconds float64 `json:"opTimeoutSeconds,omitempty"`
	}
	return json.Marshal(out{configAlias: configAlias(c), DurationSeconds: c.Duration.Seconds(), OpTimeoutSeconds: c.OpTimeout.Seconds()})
}

// UnmarshalJSON reads durations as seconds (durationSeconds: 2.5) or as strings
// (duration: "500ms"); unknown fields are an error, so a misspelt field is not silently
// ignored.
func (c *Config) UnmarshalJSON(b []byte) error {
	var j configJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*c = Config(j.configAlias)
	c.Duration, c.OpTimeout = time.Duration(j.Duration), time.Duration(j.OpTimeout)
	for _, f := range []struct {
		name string
		secs *float64
		str  jsonDuration
		dst  *time.Duration
	}{{"duration", j.DurationSeconds, j.Duration, &c.Duration}, {"opTimeout", j.OpTimeoutSeconds, j.OpTimeout, &c.OpTimeout}} {
		if f.secs == nil {
			continue
		}
		if f.str != 0 {
			return fmt.Errorf("give %s or %sSeconds, not both", f.name, f.name)
		}
		if math.IsNaN(*f.secs) || math.IsInf(*f.secs, 0) || math.Abs(*f.secs) > math.MaxInt64/float64(time.Second) {
			return fmt.Errorf("%sSeconds %v is out of range", f.name, *f.secs)
		}
		*f.dst = fromSecs(*f.secs)
	}
	return nil
}

type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("bad duration %q: %w", s, err)
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"5s\" or nanoseconds, got %s", b)
	}
	*d = jsonDuration(n)
	return nil
}
