package chunkstore

import (
	"errors"
	"fmt"
	"io/fs"

	"go.uber.org/zap"
)

func (k opKind) String() string {
	switch k {
	case opWrite:
		return "write"
	case opTruncate:
		return "truncate"
	case opZero:
		return "zero"
	case opDelete:
		return "delete"
	case opMarkDamaged:
		return "mark damaged"
	}
	return fmt.Sprintf("op(%d)", k)
}

// applyOp carries out one object operation: file changes first, then the
// meta in t (and in t.metas, published to the cache once t commits). The
// caller holds the object's stripe lock.
//
// It returns the slots that blocks left (moved away from, or became holes
// in), for the left claims, when the store places writes.
func (s *Store) applyOp(t *metaTxn, op *queuedOp, flip *placement) ([]slotRun, error) {
	id := op.id
	l := loc{op: op.kind.String(), pg: id.pg, object: id.name, block: -1}
	m, found, err := s.txnMeta(t, l)
	if err != nil {
		return nil, err
	}
	if flip != nil {
		// A placed write: its blocks are in their slots already (Commit
		// synced them before the log record); the file is not emptied
		// even for a new object, whose other blocks are holes in m.
		if !found {
			m = objMeta{}
		}
		left := s.blockIO(id, nil, l).flip(&m, flip.rec)
		s.stats.flipped.Add(1)
		if op.placedOnly {
			if err := s.markFlippedDamage(id, l, &m, flip.rec); err != nil {
				return nil, err
			}
		}
		m.version = op.version
		t.metas[metaKeyT{id.pg, id.name}] = metaItem{m: m.clone(), found: true}
		return left, nil
	}
	var before objMeta // for the slots blocks leave (a flip returns its own)
	if s.cfg.placeWrites() && found {
		before = m.clone()
	}
	if op.kind == opDelete {
		// Remove the file even without meta: a replay after a crash may
		// find a file whose meta never reached the disk.
		if err := s.files.remove(id.rel()); err != nil {
			return nil, l.wrap(err)
		}
		t.metas[metaKeyT{id.pg, id.name}] = metaItem{}
		return leftSlots(&before, &objMeta{}), nil
	}
	// A new object starts from an empty file: whatever an earlier
	// incarnation left there is not described by the (empty) bitmap.
	of, err := s.files.get(id.rel(), true, !found)
	if err != nil {
		return nil, l.wrap(err)
	}
	defer s.files.put(of)
	b := s.blockIO(id, of.f, l)
	b.tolerate = op.version <= s.recoveringThrough(id.pg)
	switch op.kind {
	case opWrite:
		err = b.write(&m, op.off, op.data)
	case opTruncate:
		err = b.truncate(&m, op.off)
	case opZero:
		err = b.zeroRange(&m, op.off, op.n)
	case opMarkDamaged:
		err = b.markDamaged(&m, op.off, op.n)
	}
	if err != nil {
		return nil, err
	}
	if b.torn > 0 {
		s.log.Warn("chunkstore: replay rewrote blocks that a crash left torn",
			zap.Stringer("pg", id.pg), zap.String("object", id.name), zap.Int("blocks", b.torn))
	}
	if b.marked > 0 {
		s.log.Warn("chunkstore: a partial write found damaged blocks; they stay unreadable until rewritten whole or repaired from a replica",
			zap.Stringer("pg", id.pg), zap.String("object", id.name), zap.Int("blocks", b.marked), zap.Uint64("version", op.version))
	}
	s.files.markDirty(id.rel())
	m.version = op.version
	t.metas[metaKeyT{id.pg, id.name}] = metaItem{m: m.clone(), found: true}
	return leftSlots(&before, &m), nil
}

// markFlippedDamage marks the blocks of a data-less flip (ApplyPlaced) that
// do not read back as r logged them (placedRecord.markDamaged). A missing
// file marks every block; another error opening it fails the batch, as
// any store error does.
func (s *Store) markFlippedDamage(id objID, l loc, m *objMeta, r *placedRecord) error {
	b := s.blockIO(id, nil, l)
	of, err := s.files.get(id.rel(), false, false)
	switch {
	case err == nil:
		defer s.files.put(of)
		b.f = of.f
	case !errors.Is(err, fs.ErrNotExist):
		return l.wrap(err)
	}
	n, err := r.markDamaged(b, m)
	if n > 0 {
		s.log.Warn("chunkstore: a placed write applied without its data left damaged blocks; they read as corrupt until rewritten whole or repaired from a replica",
			zap.Stringer("pg", id.pg), zap.String("object", id.name), zap.Int("blocks", n))
	}
	return err
}

// leftSlots returns, as runs, the slots of the blocks stored in before that
// after stores elsewhere or not at all.
func leftSlots(before, after *objMeta) []slotRun {
	var left []slotRun
	for i := int64(0); i < int64(len(before.bits))*8; i++ {
		if before.has(i) && (!after.has(i) || after.slot(i) != before.slot(i)) {
			left = appendRun(left, i, before.slot(i))
		}
	}
	return left
}

// txnMeta is l's meta as the batch sees it: its own earlier changes, then
// the cache, then the backlog, then badger.
func (s *Store) txnMeta(t *metaTxn, l loc) (objMeta, bool, error) {
	if it, ok := t.metas[metaKeyT{l.pg, l.object}]; ok {
		return it.m.clone(), it.found, nil
	}
	if m, found, ok := s.metas.get(l.pg, l.object); ok {
		return m, found, nil
	}
	if m, found, ok := s.backlog.get(metaKeyT{l.pg, l.object}); ok {
		return m, found, nil
	}
	if t.txn == nil {
		t.txn = s.db.NewTransaction(false)
	}
	return readMeta(t.txn, l, int64(s.cfg.BlockSize))
}

func (b *blockIO) write(m *objMeta, off int64, data []byte) error {
	end := off + int64(len(data))
	if end > m.size {
		m.resize(end, b.bs)
	}
	if len(data) == 0 {
		return nil
	}
	i0, i1 := off/b.bs, (end-1)/b.bs
	if off%b.bs == 0 && end%b.bs == 0 {
		return b.put(m, i0, data)
	}
	buf := make([]byte, (i1-i0+1)*b.bs)
	var keep []int64 // partly written blocks that stay marked damaged
	if off%b.bs != 0 || (i0 == i1 && end%b.bs != 0) {
		bad, err := b.readForUpdate(m, i0, buf[:b.bs])
		if err != nil {
			return err
		}
		if bad {
			keep = append(keep, i0)
		}
	}
	if i1 != i0 && end%b.bs != 0 {
		bad, err := b.readForUpdate(m, i1, buf[(i1-i0)*b.bs:])
		if err != nil {
			return err
		}
		if bad {
			keep = append(keep, i1)
		}
	}
	copy(buf[off-i0*b.bs:], data)
	return b.put(m, i0, buf, keep...)
}

func (b *blockIO) truncate(m *objMeta, size int64) error {
	if size < m.size {
		b.drop(m, nblocks(size, b.bs), nblocks(m.size, b.bs))
		if tail := size % b.bs; tail != 0 && m.has(size/b.bs) {
			if err := b.modify(m, size/b.bs, func(blk []byte) { clear(blk[tail:]) }); err != nil {
				return err
			}
		}
	}
	m.resize(size, b.bs)
	return nil
}

func (b *blockIO) zeroRange(m *objMeta, off, length int64) error {
	// Only blocks below the old size can be stored.
	end := min(off+length, m.size)
	for i := off / b.bs; off < end && i*b.bs < end; i++ {
		lo, hi := max(off-i*b.bs, 0), min(end-i*b.bs, b.bs)
		if !m.has(i) {
			continue
		}
		if lo == 0 && hi == b.bs {
			b.drop(m, i, i+1)
			continue
		}
		if err := b.modify(m, i, func(blk []byte) { clear(blk[lo:hi]) }); err != nil {
			return err
		}
	}
	if e := off + length; e > m.size {
		m.resize(e, b.bs)
	}
	return nil
}
