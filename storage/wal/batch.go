package wal

import "encoding/binary"

// Batch collects records for one Commit. It is not safe for concurrent use.
type Batch struct {
	buf []byte
	ops []bop
}

// bop is a batched change, applied to the in-memory index after the write.
type bop struct {
	typ   byte
	pg    PG
	first uint64
	offs  []int64  // entries: offset of each entry header in buf
	lens  []uint32 // entries: payload lengths
	marks []bool   // entries: marked (nil: none)
	hs    []byte
	upTo  uint64 // compact: entries below go; rewrite: the index rewritten
}

// Append adds entries first, first+1, ... of pg. Stored entries at and
// after first are replaced (raft's conflicting suffix).
func (b *Batch) Append(pg PG, first uint64, ents [][]byte) {
	b.AppendMarked(pg, first, ents, nil)
}

// AppendMarked is Append with a mark per entry (marked[i] for ents[i]; nil
// marks none). The log keeps the marks with the entries and returns them
// (EntriesMarked, Marked); what a mark means is the caller's business.
func (b *Batch) AppendMarked(pg PG, first uint64, ents [][]byte, marked []bool) {
	if len(ents) == 0 {
		return
	}
	op := bop{typ: recEntries, pg: pg, first: first}
	if marked != nil {
		op.marks = append([]bool(nil), marked...)
	}
	size := recHeader + bodyHeader + 12
	for _, e := range ents {
		size += entryHeader + len(e)
	}
	b.reserve(size)
	b.buf = appendRecord(b.buf, recEntries, pg, func(x []byte) []byte {
		x = binary.BigEndian.AppendUint64(x, first)
		x = binary.BigEndian.AppendUint32(x, uint32(len(ents)))
		for _, e := range ents {
			op.offs = append(op.offs, int64(len(x)))
			op.lens = append(op.lens, uint32(len(e)))
			x = appendEntry(x, e, marked != nil && marked[len(op.lens)-1])
		}
		return x
	})
	b.ops = append(b.ops, op)
}

// reserve makes room for n more bytes plus a commit's padding without
// moving the buffer later, keeping it aligned for a direct write.
func (b *Batch) reserve(n int) {
	need := len(b.buf) + n + blockAlign + recHeader
	if cap(b.buf) >= need {
		return
	}
	var nb []byte
	nb = scratch(&nb, max(need, 2*cap(b.buf)))[:len(b.buf)]
	copy(nb, b.buf)
	b.buf = nb
}

// HardState records pg's raft hard state (opaque).
func (b *Batch) HardState(pg PG, hs []byte) {
	b.reserve(recHeader + bodyHeader + len(hs))
	b.buf = appendRecord(b.buf, recHardState, pg, func(x []byte) []byte { return append(x, hs...) })
	b.ops = append(b.ops, bop{typ: recHardState, pg: pg, hs: append([]byte(nil), hs...)})
}

// Compact drops pg's entries below upTo.
func (b *Batch) Compact(pg PG, upTo uint64) {
	b.buf = appendRecord(b.buf, recCompact, pg, func(x []byte) []byte { return binary.BigEndian.AppendUint64(x, upTo) })
	b.ops = append(b.ops, bop{typ: recCompact, pg: pg, upTo: upTo})
}

// Rewrite replaces pg's entry index, as the log stands at this point of the
// batch, with ent (marked or not), leaving the entries around it alone.
// Nothing happens if index is not in the log then (compacted, or not
// written). A caller that also appends in the batch orders the two as it
// means them: a rewrite after an append that replaced index rewrites the
// new entry.
func (b *Batch) Rewrite(pg PG, index uint64, ent []byte, marked bool) {
	b.reserve(recHeader + bodyHeader + 8 + entryHeader + len(ent))
	op := bop{typ: recRewrite, pg: pg, upTo: index}
	b.buf = appendRecord(b.buf, recRewrite, pg, func(x []byte) []byte {
		x = binary.BigEndian.AppendUint64(x, index)
		op.offs = []int64{int64(len(x))}
		op.lens = []uint32{uint32(len(ent))}
		if marked {
			op.marks = []bool{true}
		}
		return appendEntry(x, ent, marked)
	})
	b.ops = append(b.ops, op)
}

// Drop forgets pg entirely.
func (b *Batch) Drop(pg PG) {
	b.buf = appendRecord(b.buf, recDrop, pg, func(x []byte) []byte { return x })
	b.ops = append(b.ops, bop{typ: recDrop, pg: pg})
}

// Reset empties the batch and keeps its buffer for reuse: a Batch used
// again for the next commit does not allocate and copy while it grows.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.ops = b.ops[:0]
}

// Cap is the capacity of the batch's buffer in bytes.
func (b *Batch) Cap() int { return cap(b.buf) }

// Empty reports whether the batch holds nothing.
func (b *Batch) Empty() bool { return len(b.ops) == 0 }
