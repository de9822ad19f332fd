// Package store keeps the durable state of the etcd-monitor daemon: the alerts that are
// pending or firing with their start times, the notification log (what was sent to which
// receiver, when, and how it went), the per-group notification state that stops a
// restart from re-paging, silences, and benchmark results.
//
// Store is the interface; Open returns the embedded default, one bbolt file, and
// NewMemory an in-memory implementation for tests and for running without a data
// directory. A PostgreSQL implementation can satisfy the same interface: every record is
// plain data (strings, times, JSON) keyed by a string ID, and no method needs more than
// a single-record or a whole-table transaction.
//
// # Guarantees
//
//   - A write that returned nil is on disk (bbolt commits with fsync) and is read back by
//     the next Open of the same file.
//   - Open never silently resets state: a file that is not a bbolt database, has a
//     damaged record, cannot be created or written, or is locked by another process is
//     an error that names the file (ErrCorrupt, ErrLocked, or the *fs.PathError).
//   - The notification log is bounded (WithMaxNotifications, default 10000 records per
//     store): the oldest records are dropped first.
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
