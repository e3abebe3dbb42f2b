// Package wal is an OSD's raft log: one append-only, segmented log for all
// the PGs of a device. Each node-loop cycle appends every PG's new entries,
// hard states and compactions as records and makes them durable with one
// fdatasync (group commit across PGs). Entries are read back with pread;
// only their locations are kept in memory. Segments are preallocated and
// zeroed ahead of the tail (see zeroStep), rotated at a size limit, and
// deleted once no PG needs their entries; at each rotation the new segment
// starts with a checkpoint of every PG's hard state and first index, so
// older segments hold nothing else of value. The first commit after Open
// writes one too (a crash or failed write right after a rotation leaves a
// segment without one), and no segment is deleted before it. Old segments
// are deleted oldest first, stopping at one that cannot be, so those left
// are always every segment from some point on (a PG's entries are never
// kept without the later segment that drops the PG).
//
// Format: a record is [u32 body length][u32 crc32c][body]; the checksum
// covers the body except entry payloads, which carry their own. Each
// commit starts on a 4 KiB boundary and is padded with zeros (at least a
// record header's worth, see paddedLen); a zero length at a block boundary
// ends a segment. Commits are written with O_DIRECT|O_DSYNC where the
// filesystem allows it (direct.go). Every entry inside a record also carries its own
// crc32c so a single entry can be read and verified alone, and may be
// marked (the top bit of its length; AppendMarked): the log keeps the mark
// and hands it back, and logs written before marks existed have none. A
// rewrite record replaces one stored entry (Batch.Rewrite); the segment of
// the entry's original append record is kept as long as the entry is,
// since that record is what places the entry's index when the log is read
// back. At Open the newest segment is cut after its last whole record: a
// torn record (a crash mid-write) and any pages past the end (the later
// pages of a commit whose first page a crash lost) go, so no later commit
// can be followed by them; damage anywhere else is ErrCorrupt.
//
// The chunk store deletes entries only after a checkpoint made the object
// changes they produced durable, so the log always reaches back to the last
// durable apply state.
//
// Who may import it: storage/chunkstore (and tests). Standard library and
// golang.org/x/sys only; no raft types (entries are opaque bytes).
package wal
