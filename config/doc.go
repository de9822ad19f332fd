// Package config is typed, hot-reloading configuration and feature flags kept in etcd.
//
// # Guarantees
//
//   - A Store holds every key under its prefix in memory, from a list+watch cache that
//     resumes after disconnects and re-lists after compaction; getters never call etcd
//     and keep answering (from the last state) while etcd is unreachable.
//   - Each value is parsed once per change: a value that is not valid JSON, or not of
//     the type a getter asks for, makes that getter return a *TypeError naming the key
//     and the expected type, and every other key keeps working. Getters never round or
//     clamp: Int refuses a number with a fraction or out of range.
//   - Watch callbacks see every change with its old and new value, in revision order,
//     after the getters already return the new value; rewrites with an identical value
//     are not reported. Each callback gets its own copy of the bytes.
//   - Restore writes a snapshot back in one etcd transaction: all keys change at one
//     revision, or none do. Snapshots keep keys and values as bytes, so values that are
//     not valid UTF-8 come back exactly; snapshots of the older text format stay
//     restorable.
//   - Flags evaluate from the same kind of cache. Percentage rollouts hash the flag name
//     and the targeting key with a fixed function (Bucket), so a key gets the same
//     variant in every process and release. Rules compare numbers as numbers.
//   - The kill switch (Kill, Revive) changes only the "killed" field of the stored
//     definition, and serves the off variant even when the rest of the definition does
//     not validate. Evaluations and definitions handed out are copies.
//   - Bad arguments, a nil Option and options a constructor would ignore return an error
//     wrapping ErrInvalidArgument.
//
// # Lifecycle
//
// New and NewFlags start the cache and one callback goroutine and return at once; Close
// stops them, waits for them and is idempotent. Values read afterwards are the last
// known ones. Close may be called from a Watch callback: it then does not wait for that
// callback, and no callback runs after it. Callbacks must not block for long: they run
// one at a time.
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
