// Package config is typed, hot-reloading configuration and feature flags kept in etcd.
//
// # Guarantees
//
// A Store holds every key under its prefix in memory, from a list+watch cache that
// resumes after disconnects and re-lists after compaction; getters never call etcd and
// keep answering (from the last state) while etcd is unreachable. Each value is parsed
// once per change: a value that is not valid JSON, or not of the type a getter asks for,
// makes that getter return a *TypeError naming the key and the expected type, and every
// other key keeps working. Watch callbacks see every change with its old and new value,
// in revision order, after the getters already return the new value; rewrites with an
// identical value are not reported. Restore writes a snapshot back in one etcd
// transaction: all keys change at one revision, or none do.
//
// Flags evaluate from the same kind of cache. Percentage rollouts hash the flag name and
// the targeting key with a fixed function (Bucket), so a key gets the same variant in
// every process and release.
//
// # Lifecycle
//
// Store.Close and Flags.Close stop the cache and the callback goroutine; values read
// afterwards are the last known ones.
//
//	cfg, _ := config.New(cli, "/app/config")
//	defer cfg.Close()
//	_ = cfg.Set(ctx, "pool/size", 10)
//	size, _ := cfg.Int("pool/size")
//	cancel, _ := cfg.Watch("pool", func(c config.Change) { resize(c.New) })
//	defer cancel()
//
// The OpenFeature provider is in the subpackage config/openfeature.
package config
