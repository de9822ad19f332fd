package store

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Store types a Config may name.
const (
	TypeBolt     = "bbolt"
	TypePostgres = "postgres"
	TypeMemory   = "memory"
)

// Retention says how long history is kept at each resolution; zero fields keep the
// implementation's defaults. A bbolt or memory store keeps only raw history.
type Retention struct {
	// Raw is how long raw health checks and metric snapshots are kept (default 24h).
	Raw time.Duration `yaml:"raw" json:"raw"`
	// Minute is how long 1-minute rollups are kept (PostgreSQL; default 30 days).
	Minute time.Duration `yaml:"minute" json:"minute"`
	// Hour is how long 1-hour rollups are kept (PostgreSQL; default 365 days).
	Hour time.Duration `yaml:"hour" json:"hour"`
}

// Config selects and configures a store: the daemon's `store:` block.
type Config struct {
	// Type is "bbolt" (the default), "postgres" or "memory".
	Type string `yaml:"type" json:"type"`
	// Path is the bbolt state file (bbolt only; required for it).
	Path string `yaml:"path" json:"path,omitempty"`
	// DSNFile names a file holding the PostgreSQL DSN, and DSNEnv an environment
	// variable holding it: exactly one for postgres, so no password sits in the YAML.
	// TLS is the DSN's: sslmode=verify-full sslrootcert=/path/ca.pem (and sslcert,
	// sslkey for client certificates).
	DSNFile string `yaml:"dsn_file" json:"dsnFile,omitempty"`
	DSNEnv  string `yaml:"dsn_env" json:"dsnEnv,omitempty"`
	// Schema keeps the PostgreSQL tables in this schema (created when missing) instead
	// of the DSN's search path.
	Schema string `yaml:"schema" json:"schema,omitempty"`
	// Retention of history.
	Retention Retention `yaml:"retention" json:"retention"`
	// QueueSize bounds the history records waiting for PostgreSQL (default 10000).
	QueueSize int `yaml:"queue_size" json:"queueSize,omitempty"`
	// QueueBytes bounds the memory those records hold, in bytes (default 8 MiB, at
	// least 1024): beyond either bound the oldest are dropped and counted.
	QueueBytes int64 `yaml:"queue_bytes" json:"queueBytes,omitempty"`
	// Logger for the store's background work; default none.
	Logger *zap.Logger `yaml:"-" json:"-"`
}

// Driver opens a store of one type from cfg, with the DSN read.
type Driver func(ctx context.Context, dsn string, cfg Config) (Store, error)

var (
	driversMu sync.Mutex
	drivers   = map[string]Driver{}
)

// Register makes a store type available to OpenConfig. Package store/postgres
// registers "postgres" when it is linked in (import _ ".../store/postgres").
// Registering a type twice replaces the first.
func Register(typ string, d Driver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	drivers[typ] = d
}

// Validate checks c without opening anything; errors name the key under store:.
func (c Config) Validate() error {
	typ := c.Type
	if typ == "" {
		typ = TypeBolt
	}
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: store.%s: %s", ErrInvalidArgument, key, fmt.Sprintf(format, args...))
	}
	r := c.Retention
	switch {
	case r.Raw < 0 || r.Minute < 0 || r.Hour < 0:
		return bad("retention", "durations must not be negative")
	case c.QueueSize < 0:
		return bad("queue_size", "%d is negative", c.QueueSize)
	case c.QueueBytes < 0 || c.QueueBytes > 0 && c.QueueBytes < 1<<10:
		return bad("queue_bytes", "%d: want at least 1024 (0 for the default)", c.QueueBytes)
	}
	pgOnly := func() error {
		for key, set := range map[string]bool{"dsn_file": c.DSNFile != "", "dsn_env": c.DSNEnv != "", "schema": c.Schema != "",
			"queue_size": c.QueueSize != 0, "queue_bytes": c.QueueBytes != 0, "retention.minute": r.Minute != 0, "retention.hour": r.Hour != 0} {
			if set {
				return bad(key, "only for type postgres (type is %s)", typ)
			}
		}
		return nil
	}
	switch typ {
	case TypeBolt:
		if c.Path == "" {
			return bad("path", "empty: bbolt needs a file")
		}
		return pgOnly()
	case TypeMemory:
		if c.Path != "" {
			return bad("path", "only for type bbolt")
		}
		if r.Raw != 0 {
			return bad("retention.raw", "a memory store keeps %v", DefaultHistoryRetention)
		}
		return pgOnly()
	case TypePostgres:
		switch {
		case c.Path != "":
			return bad("path", "only for type bbolt")
		case (c.DSNFile == "") == (c.DSNEnv == ""):
			return bad("dsn_file", "set exactly one of dsn_file and dsn_env")
		}
		return nil
	}
	driversMu.Lock()
	_, ok := drivers[typ]
	driversMu.Unlock()
	if !ok {
		return bad("type", "unknown type %q: want bbolt, postgres or memory", c.Type)
	}
	return nil
}

// DSN reads the DSN from DSNFile (surrounding white space trimmed) or DSNEnv. Errors
// name the file or variable, never the DSN.
func (c Config) DSN() (string, error) {
	switch {
	case c.DSNFile != "":
		b, err := os.ReadFile(c.DSNFile)
		if err != nil {
			return "", fmt.Errorf("store.dsn_file: %w", err)
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			return "", fmt.Errorf("%w: store.dsn_file: %s is empty", ErrInvalidArgument, c.DSNFile)
		}
		return dsn, nil
	case c.DSNEnv != "":
		dsn := strings.TrimSpace(os.Getenv(c.DSNEnv))
		if dsn == "" {
			return "", fmt.Errorf("%w: store.dsn_env: environment variable %s is empty or not set", ErrInvalidArgument, c.DSNEnv)
		}
		return dsn, nil
	}
	return "", fmt.Errorf("%w: store.dsn_file: set dsn_file or dsn_env", ErrInvalidArgument)
}

// OpenConfig opens the store cfg describes: a bbolt file, an in-memory store, or a
// store of a registered type (postgres: link in package store/postgres). The caller
// closes it.
func OpenConfig(ctx context.Context, cfg Config) (Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Type {
	case "", TypeBolt:
		var opts []Option
		if cfg.Retention.Raw > 0 {
			opts = append(opts, WithHistoryRetention(cfg.Retention.Raw))
		}
		return Open(cfg.Path, opts...)
	case TypeMemory:
		return NewMemory(), nil
	}
	driversMu.Lock()
	d, ok := drivers[cfg.Type]
	known := slices.Sorted(maps.Keys(drivers))
	driversMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: store.type: %q is not linked into this program (have %v): import _ \"github.com/etcd-monitor/etcd-monitor/store/%s\"",
			ErrInvalidArgument, cfg.Type, known, cfg.Type)
	}
	dsn, err := cfg.DSN()
	if err != nil {
		return nil, err
	}
	return d(ctx, dsn, cfg)
}
