// Package postgres is the store.Store of etcd-monitor on PostgreSQL (through pgx and
// its pool): alert state and its history of transitions (a store.AlertHistorian), the
// notification log, silences, benchmark results, maintenance operations and the
// history of health checks and metric snapshots, shared
// by every daemon that points at the same database, and the fenced Lease that lets one
// of them evaluate alerts and notify.
//
// The connection pool has at least DefaultMaxConns (16) connections unless the DSN
// sets pool_max_conns: pgxpool's own default (4 on a small machine) queued the API's
// history reads behind each other and the writer.
//
// Open applies the schema migrations (versioned, each in its own transaction and
// recorded in schema_migrations; concurrent starters queue on an advisory lock) and
// starts two goroutines: the history writer and the background job.
//
// History is written off the caller's path: PutHealthChecks and PutMetricSnapshots
// queue the records (bounded in records, WithQueueSize, default 10000, and in the
// memory they hold, WithQueueBytes, default 8 MiB) and return. Raw records are kept for a
// day, rolled up into 1-minute steps kept 30 days and 1-hour steps kept a year
// (WithRetention). A query picks per part of its range the table that answers it:
// the coarsest rollup whose resolution divides the step, finer data for the most
// recent part not rolled up yet, and coarser rollups for what is older than the finer
// ones keep. A read is one read-only, repeatable-read transaction (the rollup
// watermarks that choose the tables and the rows read are of one snapshot) whose
// BEGIN goes with the watermarks' query and whose COMMIT with the last rows' query:
// two round trips for the newest records. The background job gathers the planner's
// statistics of the history tables that have none yet (with TimescaleDB, of their
// chunks and the continuous aggregates'; autovacuum analyzes a table only a minute or
// more after it was written): without them PostgreSQL reads the
// newest records by fetching every raw row of the day and sorting them. Values are
// stored as the id of their sorted set of names (value_names) and a float8[]; rollups
// add the maxima.
//
// # TimescaleDB
//
// When the timescaledb extension is installed before the first start (in any schema),
// the raw history tables are hypertables (chunks of a day, no index of TimescaleDB's
// own: the primary key and the BRIN index serve) and the 1-minute and 1-hour rollups
// are continuous aggregates (health_1m over health_raw, health_1h over health_1m, the
// same for metrics) with the rollup tables' columns and the same means and maxima,
// computed by the elementwise aggregates history_mean and history_max. An aggregate
// groups by the set of value names too, so a step in which the records' names changed
// has a row per set; reads merge them into one record. A value that only some of a
// step's records have is then averaged over the records that have it, at every
// resolution, as a read of the raw records averages it; the store's own hour rollups
// weigh each minute's mean by all the minute's records instead, so the hour (and
// multi-minute) means of such a value differ from plain PostgreSQL's. The aggregates
// are materialized only (no real-time part: the reads add the newest raw rows
// themselves) and are refreshed by the store's job, not by a policy of TimescaleDB's,
// through the same watermarks (rollup_state) as the store's own rollups: a refresh runs
// while the job holds its rollup's watermark row, so a writer waits for it, late
// history rewinds the watermark, and reads, staleness and retention follow the same
// rules on both servers. The refresh runs on an idle connection of the pool, or on one
// of its own when the pool has none idle (one more connection to PostgreSQL while it
// runs): a refresh waiting for the pool, whose connections the job's transaction and
// the writer waiting for the watermark row may hold, would stall the job. The
// transaction holding the row may stay idle up to the job's deadline, not the operation
// timeout, while it waits for the refresh. Retention drops whole chunks only (of raw
// tables, and of the aggregates: a day for the minutes, 30 days for the hours): a
// deleted row below the refreshed range would stay in TimescaleDB's invalidation log
// for good. Reads bound each table to its part of the range, so the rest of a chunk
// kept past its retention (up to its length) is never read. A database that rolled up
// history before the schema version that brought the aggregates keeps its rollup tables
// (hypertables) and the store's own rollups, which delete rows past the retention after
// dropping chunks.
//
// # Guarantees
//
//   - A synchronous call never waits longer than the operation timeout (WithOpTimeout,
//     default 5s) for PostgreSQL; a failure is returned and counted in Stats.Errors.
//     Cleanups that run after their caller's context ended (the migration lock's
//     release) have that timeout too; a connection that stops answering is then
//     closed within pgx's own bound (15s).
//   - History writes never block: while PostgreSQL is down, batches are retried with
//     backoff (up to 5s apart) and new records queue up to the bounds; beyond either
//     the oldest waiting are dropped, counted in Stats.Dropped (and each overflow in
//     Stats.Errors) (Written + Dropped is what
//     was put, once the queue is empty). Records PostgreSQL refuses as data (text
//     with a NUL byte, JSON with \u0000, a time out of its range) are dropped and
//     counted, not retried forever, and only they: the rest of their batch is
//     written.
//   - Late history (written after its steps were rolled up) moves the rollup
//     watermarks back, so the rollups are redone with it; history too old for that
//     (in rolled-up steps older than the raw retention less a minute, or the minute
//     retention less an hour, whose other records may be deleted) is dropped and
//     counted, so it never replaces what the rollups kept.
//   - Raw data and 1-minute rollups are deleted only after they are rolled up.
//   - Rollups, retention, the staleness of late history and which table answers a
//     read go by PostgreSQL's clock (clock_timestamp()), as the lease does, so
//     replicas agree on them whatever their own clocks say. A record's time is the
//     daemon's (when it checked); the job logs a daemon clock a minute or more off.
//   - A Lease has one holder at a time by PostgreSQL's clock; a term's token is larger
//     than every earlier term's; writes through Lease.Fenced are refused (ErrFenced)
//     once the term ended, and a takeover waits for a fenced write in progress — but
//     not for a stalled one: every session ends a transaction left idle longer than the
//     operation timeout (idle_in_transaction_session_timeout, unless the DSN sets it;
//     only the job's transaction waiting for a refresh of continuous aggregates may
//     stay idle up to the job's deadline, holding no lease), so a holder that freezes
//     inside a fenced write holds the lease row at most that long past its expiry, and
//     the write is lost.
//   - Errors never show the DSN's password.
//
// What is not guaranteed: history accepted by Put* is lost if the process dies before
// the writer wrote it (at most one batch interval, or the outage's backlog); reads do
// not see queued history (Flush waits for it).
//
// The TimescaleDB path is tested against TimescaleDB 2.28 on PostgreSQL 15 where the
// test server can load it: the store contract on continuous aggregates
// (TestTimescaleDBContract); the same reads as plain PostgreSQL after rollups and
// retention, with old chunks dropped, with continuous aggregates and with the store's
// own rollups of an upgraded database (TestTimescaleDBRollupAndRetention), and with
// names that change within a minute, late history and huge values
// (TestTimescaleDBAggregatesAnswerAsStoreRollups), a value in only some records
// (TestTimescaleDBAggregatesAverageOverRecordsWithTheValue); no chunk dropped that
// holds rows not rolled up (TestTimescaleDBRetentionWaitsForRollups); nothing written
// during a refresh missed (TestTimescaleDBAggregatesMissNothingWrittenDuringRefresh);
// and invalidation logs that do not grow with each run
// (TestTimescaleDBInvalidationLogsStayBounded). Debian has no package of TimescaleDB,
// so CI's server runs without it and those tests skip there; TestTimescaleSQL checks
// the hypertable SQL against stand-ins and TestAggregateFunctionsAnswerAsRollups the
// aggregates' functions on plain PostgreSQL.
//
// While PostgreSQL is down, no replica notifies: safety over liveness. The Lease can
// be neither renewed nor taken, so the active replica's term ends before the lease
// would have expired (the daemon stops its alert engine at most three quarters of a
// TTL into the outage) and no standby can start one; alerts about etcd found
// meanwhile are not sent. Monitoring and the API go on from memory, the history of the
// replica that last held the lease (as far as it knows; the daemon lets only it write
// history) queues up to its bounds, and synchronous calls fail within the operation timeout, counted in Stats.Errors.
// When PostgreSQL returns, one replica (any) takes the lease with a new token and its
// engine starts from the alert state and notification log as the outage found them:
// the history queue is written (what overflowed stays dropped), alerts that resolved
// meanwhile send their resolve, conditions still true are evaluated afresh (a new
// alert waits its rule's `for` from then, not from when the condition began), and a
// notification whose send was not recorded before the term ended (its fenced log
// write failed) is sent again: across an outage delivery is at least once.
//
// # Lifecycle
//
// Open connects and starts the writer and the job; Close writes what is queued (within
// about twice the operation timeout), stops both and closes the pool; it is
// idempotent. A Lease
// owns no goroutine: its holder calls Acquire and Renew (see the daemon's replica
// loop) and Release when done. A Fenced view shares the store and is not closed.
//
//	st, err := postgres.Open(ctx, dsn, postgres.WithLogger(log))
//	if err != nil { ... }
//	defer st.Close()
package postgres
