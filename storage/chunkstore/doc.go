// Package chunkstore is the per-device store of an OSD: one badger database
// per device holding
//
//   - object data of placement groups (PGs), cut into fixed-size blocks that
//     each carry a CRC-32C over their identity (PG, object name, block index)
//     and their bytes, checked on every read, and
//   - each PG's raft log, hard state and apply state, as opaque bytes.
//
// It is the only package of the project that imports badger, and it does not
// import raft. Only storage/osd (and tests) may import it.
//
// # Durability and atomicity
//
// All writes go through a Batch. Commit returns nil only once everything in
// the batch is on disk (badger with SyncWrites). A batch is applied as one
// badger transaction unless it is larger than badger allows for one
// transaction; then it is committed as several transactions in call order and
// a crash can leave a prefix of its operations durable. Callers that need an
// all-or-nothing effect put their commit marker (the apply state) last.
//
// # Concurrency
//
// Store methods are safe for concurrent use. A Batch belongs to one
// goroutine. Transactions are not checked for conflicts: the caller runs at
// most one writer per PG at a time (the OSD's single Ready loop does).
//
// # Lifecycle
//
// Open starts no goroutines of its own (badger runs its compaction and flush
// goroutines until Close). Value-log garbage collection runs only inside
// RunGC, which the owner runs and stops through its context.
package chunkstore
