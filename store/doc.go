// Package store keeps the durable state of the etcd-monitor daemon: the alerts that are
// pending or firing with their start times, the notification log (what was sent to which
// receiver, when, and how it went), the per-group notification state that stops a
// restart from re-paging, silences, benchmark results, maintenance operations, and the
// history of health checks and metric snapshots.
//
// Store is the interface; Open returns the embedded default, one bbolt file, and
// NewMemory an in-memory implementation for tests and for running without a data
// directory. Package store/postgres implements it on PostgreSQL; OpenConfig opens the
// store a Config (the daemon's store: block) names. Every record is plain
// data (strings, times, numbers, JSON), and package storetest is the contract every
// implementation passes.
//
// PutAlerts also records each alert's transitions to firing and to resolved (see
// Transitions); every implementation here is an AlertHistorian that reads them back,
// so the alert history survives a restart and every daemon sharing a store answers it
// alike.
//
// History (HealthCheck, MetricSnapshot) is read with a HistoryQuery: Since and Until
// bound the time (any time: records are of 1970 to MaxRecordTime, 2262-04-11, so an
// Until after that bounds nothing), Step downsamples (means and maxima of the named
// Values per step, at most MaxHistoryStep, 366 days), and Limit keeps the newest
// records, which are returned oldest first. Means are finite whatever the values: an
// overflowing sum (values near math.MaxFloat64) does not make them +Inf.
//
// # Guarantees
//
//   - A write that returned nil is on disk (bbolt commits with fsync) and is read back by
//     the next Open of the same file.
//   - Open never silently resets state: a file that is not a bbolt database, has a
//     damaged record, cannot be created or written, or is locked by another process is
//     an error that names the file (ErrCorrupt, ErrLocked, or the *fs.PathError).
//   - The notification log and the alert history are bounded (WithMaxNotifications,
//     default 10000 records each per store): the oldest records are dropped first.
//   - History older than the retention (WithHistoryRetention, default 24h) is deleted
//     as new history is written: of the clusters written at once, of the others (one no
//     longer monitored) at most a minute later; a Memory store also keeps at most
//     DefaultMemoryHistory records per cluster and member. In the bbolt file a record's
//     Data of 512 bytes or more is stored deflated (a metrics snapshot of 3 members:
//     about 8 KB of JSON, 1.8 KB stored), and reads back byte for byte. On Linux each
//     history write gives back the pages of the file the process mapped to make it, so
//     the process's resident size does not grow with the file.
//   - Every method is safe for concurrent use. After Close every method returns
//     ErrClosed.
//
// What is not guaranteed: two processes cannot share one bbolt file (the second Open
// fails with ErrLocked); share a PostgreSQL store instead.
//
// # Lifecycle
//
// Open and NewMemory start no goroutines. Close releases the file lock; it is
// idempotent. A Store passed to alert.WithStore stays the caller's to close, after the
// alert.Manager.
//
//	st, err := store.Open(filepath.Join(dataDir, "etcd-monitor.db"))
//	if err != nil { ... } // names the file
//	defer st.Close()
package store
