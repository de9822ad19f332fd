package store

import (
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// releaseMapped drops this process's mappings of the first size bytes of db's file
// (MADV_DONTNEED on bbolt's read-only shared map): the pages stay in the page cache, and
// the next read maps them again, with the same content. Without it every page a
// transaction reads stays mapped, and the history's appends read a fresh copy of the
// leaf they add to each time, so the resident size grows with the file, to hundreds of
// megabytes at a day's retention. Call it in a write transaction: bbolt remaps the file
// only in those, so the map cannot move meanwhile.
func releaseMapped(db *bolt.DB, size int64) {
	if data := db.Info().Data; data != 0 && size > 0 {
		syscall.Syscall(syscall.SYS_MADVISE, data, uintptr(size), syscall.MADV_DONTNEED)
	}
}
