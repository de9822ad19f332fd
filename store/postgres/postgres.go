package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// idleInTx is the session setting that ends a session left idle inside a transaction.
const idleInTx = "idle_in_transaction_session_timeout"

// Store is a store.Store on PostgreSQL. Use Open.
type Store struct {
	pool *pgxpool.Pool
	opts options
	log  *zap.Logger
	// timescale is the schema of TimescaleDB's functions (quoted) when the history
	// tables are hypertables, nil otherwise.
	timescale atomic.Pointer[string]
	// caggs is that schema too when the rollups are TimescaleDB's continuous
	// aggregates, nil when they are this package's own tables.
	caggs atomic.Pointer[string]

	errors  atomic.Uint64
	dropped atomic.Uint64
	written atomic.Uint64
	// rowsRead counts the rows history reads fetched, for tests of their bound.
	rowsRead atomic.Uint64
	// jobRuns counts the background job's completed runs, for tests.
	jobRuns atomic.Uint64

	w     writer
	names names

	// clock is this process's wall clock. Rollups, retention and the reads that
	// follow them go by PostgreSQL's clock instead, which every replica shares; this
	// one only measures how far off it is, for the log.
	clock atomic.Pointer[func() time.Time]

	bg       context.Context // cancelled by Close: background work stops
	bgCancel context.CancelFunc

	closeOnce sync.Once
	closing   chan struct{}
	closed    atomic.Bool
	wg        sync.WaitGroup
}

var (
	_ store.Store          = (*Store)(nil)
	_ store.AlertHistorian = (*Store)(nil)
)

// Stats are the store's counters since Open.
type Stats struct {
	// Errors counts failed operations: every synchronous call that failed for a reason
	// other than its arguments, every failed attempt to write a history batch (one
	// PostgreSQL refuses as data counts once for each record it refuses, the others
	// being written), every failed background job. The daemon exports it as etcd_monitor_store_errors_total.
	Errors uint64 `json:"errors"`
	// Dropped counts history records given up: the queue was full, the store closed
	// before they were written, PostgreSQL refused them as data, or they were too old
	// to write (see the package's Guarantees).
	Dropped uint64 `json:"dropped"`
	// Written counts history records written.
	Written uint64 `json:"written"`
	// Queued is the number of history records waiting to be written, and QueuedBytes
	// about the memory they hold.
	Queued      int   `json:"queued"`
	QueuedBytes int64 `json:"queuedBytes"`
}

// Open connects to the PostgreSQL of dsn (a URL or key=value string as libpq takes it;
// TLS through sslmode, sslrootcert, sslcert, sslkey), applies the schema migrations
// not yet applied, and starts the history writer and the background job. It fails when
// PostgreSQL cannot be reached within the operation timeout; errors never contain the
// DSN's password.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o, err := apply(opts)
	if err != nil {
		return nil, err
	}
	if dsn == "" {
		return nil, fmt.Errorf("%w: empty DSN", ErrInvalidArgument)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: DSN %s", ErrInvalidArgument, dsnReason(err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.opTimeout {
		cfg.ConnConfig.ConnectTimeout = o.opTimeout
	}
	if o.schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = o.schema
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// pgxpool's default (4 on a small machine) queues the API's history reads
		// behind each other and the writer: at 170 reads a second the p99 doubled.
		cfg.MaxConns = max(cfg.MaxConns, DefaultMaxConns)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "etcd-monitor"
	if _, set := cfg.ConnConfig.RuntimeParams[idleInTx]; !set {
		// A replica that stalls inside a fenced write (a frozen process, a cut network)
		// holds the lease row until PostgreSQL ends its session, and no standby can take
		// the lease until then. Every transaction here sends its statements back to back,
		// so one idle for longer than an operation may take is stalled.
		cfg.ConnConfig.RuntimeParams[idleInTx] = strconv.FormatInt(max(o.opTimeout.Milliseconds(), 1), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, opts: o, log: o.logger, closing: make(chan struct{})}
	now := time.Now
	s.clock.Store(&now)
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	if err := s.init(ctx); err != nil {
		s.bgCancel()
		pool.Close()
		return nil, err
	}
	s.w.init(o.queueSize, o.queueBytes)
	s.wg.Add(2)
	go s.writeLoop()
	go s.jobLoop()
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 6*s.opts.opTimeout)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Release()
	n, err := migrate(ctx, conn.Conn(), s.opts.schema, s.opts.migrations, s.opts.opTimeout)
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("postgres schema migrated", zap.Int("steps", n), zap.Int("version", s.opts.migrations[len(s.opts.migrations)-1].version))
	}
	nsp, err := timescaleSchema(ctx, conn)
	hyper, caggs := false, false
	if err == nil && nsp != "" {
		err = conn.QueryRow(ctx, isHypertableSQL).Scan(&hyper)
	}
	if err == nil && hyper {
		err = conn.QueryRow(ctx, isAggregateSQL).Scan(&caggs)
	}
	if err != nil {
		return fmt.Errorf("postgres: detect timescaledb: %w", err)
	}
	if hyper {
		s.timescale.Store(&nsp)
		if caggs {
			s.caggs.Store(&nsp)
		} else {
			s.log.Info("timescaledb: the history tables are hypertables; the rollups are the store's own tables, which held rollups before continuous aggregates were used")
		}
	}
	return nil
}

// daemonNow reads this process's wall clock.
func (s *Store) daemonNow() time.Time { return (*s.clock.Load())() }

// Timescale reports whether the history tables are TimescaleDB hypertables.
func (s *Store) Timescale() bool { return s.timescale.Load() != nil }

// ContinuousAggregates reports whether the 1-minute and 1-hour rollups are
// TimescaleDB continuous aggregates (see the package documentation).
func (s *Store) ContinuousAggregates() bool { return s.caggs.Load() != nil }

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{Errors: s.errors.Load(), Dropped: s.dropped.Load(), Written: s.written.Load(), Queued: s.w.len(),
		QueuedBytes: s.w.bytes()}
}

// Pool returns the connection pool, for callers that need PostgreSQL's own statistics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close writes the queued history (waiting at most about twice the operation timeout:
// a batch in flight, then one last attempt), stops the background work and closes the
// pool. It is idempotent; calls after it return
// store.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		s.bgCancel()
		s.wg.Wait()
		s.pool.Close()
	})
	return nil
}

// op runs fn under the operation timeout and counts its failure. Argument errors are
// the caller's, not the store's, and are not counted.
func (s *Store) op(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, s.opts.opTimeout)
	defer cancel()
	err := fn(tctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrInvalidArgument), errors.Is(err, store.ErrNotFound), errors.Is(err, ErrFenced):
		return err
	case s.closed.Load():
		return store.ErrClosed
	case ctx.Err() != nil:
		return ctx.Err() // the caller gave up: not the store's failure
	}
	s.errors.Add(1)
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// retryable reports whether a failed write may succeed when tried again: connection
// and server-state errors may, errors about the data may not.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "22", "23", "42", "2B", "0A":
			return false
		}
	}
	return true
}

// backoff waits d or until the store closes; it reports whether the wait ran out.
func (s *Store) backoff(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closing:
		return false
	}
}

// dsnReason says why a DSN cannot be parsed without quoting it: pgconn's message shows
// the DSN with the password masked only where it recognises one (not in
// "password = secret", for one).
func dsnReason(err error) string {
	const generic = "cannot be parsed"
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return generic
	}
	msg := pe.Error()
	i := strings.LastIndex(msg, "`: ")
	if i < 0 {
		return generic
	}
	reason := msg[i+3:]
	if pe.ConnString != "" && strings.Contains(reason, pe.ConnString) || strings.Contains(strings.ToLower(reason), "password") ||
		strings.Contains(reason, "@") {
		return generic
	}
	return generic + ": " + reason
}
