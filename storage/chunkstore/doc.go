// Package chunkstore is the per-device store of an OSD. A store directory
// holds
//
//   - objects/: one file per object of each placement group (PG), cut into
//     fixed-size blocks, each with a CRC-32C over the object's identity, the
//     block index and its bytes, checked on every read (objfile.go);
//   - meta/: one badger database (SyncWrites on) with each object's size,
//     version and bitmap of stored blocks, and each PG's apply state as of
//     the last checkpoint; metas are written to it behind, at checkpoints
//     (metabacklog.go), so it sees about one synced commit per second;
//   - wal/: the raft log and hard states of every PG (storage/wal), written
//     with one fdatasync per batch for all PGs.
//
// Object data stays out of badger on purpose: badger memory-maps its value
// log, so every byte written through it stays resident in the OSD and counts
// towards its memory, and writing data twice (log entry, then value) through
// badger cost most of an OSD's CPU. Files written with pwrite live in the
// kernel's page cache instead. Badger keeps what it is good at: the small,
// sorted, transactional metadata.
//
// It is the only package of the project that imports badger, and it does not
// import raft. Only storage/osd (and tests) may import it.
//
// # Durability
//
// Batch.Commit makes the raft records durable, then applies the object
// changes without syncing them (the object files through the page cache,
// the metas in memory). Checkpoint (run by RunCheckpoints, and by Close)
// makes the changed files durable (one syncfs) and syncs the meta, then
// records the apply states that cover them; only then are raft log entries below the
// compaction points deleted. After a crash, LoadRaft returns the last
// checkpoint's apply state and the OSD re-applies the log from there over
// whatever reached the disk; see Batch and Recover for why that is safe.
//
// # Concurrency
//
// Store methods are safe for concurrent use. A Batch belongs to one
// goroutine. The caller runs at most one Commit at a time (the OSD's single
// Ready loop does). A read sees each object either before or after a
// concurrent Commit's change to it, never in between.
//
// # Lifecycle
//
// Open starts no goroutines of its own (badger runs its compaction and flush
// goroutines until Close). Checkpoints run inside RunCheckpoints and
// value-log garbage collection inside RunGC, which the owner runs and stops
// through its context.
package chunkstore
