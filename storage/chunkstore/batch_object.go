package chunkstore

import "fmt"

// Write writes data at off into object of pg at Commit, creating the object
// if it is missing; its size becomes max(size, off+len(data)) and its
// version version (the raft index of the operation). Only the touched blocks
// are read and rewritten; a block left all zeros becomes a hole. Errors:
// ErrInvalid (bad name, negative offset), ErrTooLarge (off+len(data) >
// MaxObjectSize); at Commit also ErrCorrupt (a block to rewrite is damaged).
func (b *Batch) Write(pg PG, object string, off int64, data []byte, version uint64) error {
	return b.add(queuedOp{kind: opWrite, off: off, n: int64(len(data)), data: data, version: version}, pg, object, "write")
}

// ApplyPlaced applies at Commit the placed write logged at index version of
// pg, without its data: for an entry whose data is damaged here (Entries
// gave ErrDamagedEntry), whose head says it wrote n bytes at off of
// object. It applies by making the write's slots current, as the write
// itself would have, so the damaged blocks stay where reads and scrub find
// them. Errors: those of Write; at Commit, ErrDamagedEntry when the write
// cannot apply that way (it is not the placed entry at that index).
func (b *Batch) ApplyPlaced(pg PG, object string, off, n int64, version uint64) error {
	return b.add(queuedOp{kind: opWrite, off: off, n: n, version: version, placedOnly: true}, pg, object, "apply placed")
}

// Truncate sets object's size at Commit, creating it if missing: blocks past
// size become holes and the partial last block is zeroed past size. Errors
// as Write.
func (b *Batch) Truncate(pg PG, object string, size int64, version uint64) error {
	return b.add(queuedOp{kind: opTruncate, off: size, version: version}, pg, object, "truncate")
}

// Zero punches [off, off+length) of object at Commit: whole blocks become
// holes, partial blocks are zeroed. The size grows to off+length if smaller;
// the object is created if missing. Errors as Write.
func (b *Batch) Zero(pg PG, object string, off, length int64, version uint64) error {
	return b.add(queuedOp{kind: opZero, off: off, n: length, version: version}, pg, object, "zero")
}

// MarkDamaged marks the blocks holding bytes [off, off+length) of object
// damaged at Commit, as a copy from a replica whose blocks there are
// damaged (ReadSkippingDamage) must leave them: their bytes become zeros
// that read as ErrCorrupt until a whole-block write. The size grows to
// off+length if smaller; the object is created if missing. Errors as Write.
func (b *Batch) MarkDamaged(pg PG, object string, off, length int64, version uint64) error {
	return b.add(queuedOp{kind: opMarkDamaged, off: off, n: length, version: version}, pg, object, "mark damaged")
}

// Delete removes object at Commit; a missing object is not an error.
// Errors: ErrInvalid (bad name).
func (b *Batch) Delete(pg PG, object string) error {
	return b.add(queuedOp{kind: opDelete}, pg, object, "delete")
}

func (b *Batch) add(op queuedOp, pg PG, object, what string) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := checkRange(loc{op: what, pg: pg, object: object, block: -1}, op.off, op.n); err != nil {
		return err
	}
	op.id = newObjID(pg, object)
	b.ops = append(b.ops, op)
	b.bytes += op.n
	return nil
}

// checkRange validates the object name and a byte range [off, off+n).
func checkRange(l loc, off, n int64) error {
	if err := validName(l.object); err != nil {
		return l.wrap(err)
	}
	if off < 0 || n < 0 {
		return l.wrap(fmt.Errorf("%w: negative offset or length (%d, %d)", ErrInvalid, off, n))
	}
	if n > MaxObjectSize || off > MaxObjectSize-n {
		return l.wrap(fmt.Errorf("%w: range [%d, +%d) passes the object size limit %d", ErrTooLarge, off, n, MaxObjectSize))
	}
	return nil
}
