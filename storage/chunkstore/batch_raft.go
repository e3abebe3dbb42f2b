package chunkstore

// AppendEntries stores ents as log entries first, first+1, ... of pg,
// replacing any stored entries from first on (raft's conflicting suffix).
// Errors: ErrInvalid (first == 0, a gap after the last entry, or below the
// first stored entry).
func (b *Batch) AppendEntries(pg PG, first uint64, ents [][]byte) error {
	return b.AppendPlaced(pg, first, ents, nil)
}

// SetHardState records pg's raft hard state (opaque bytes), durable at Commit.
func (b *Batch) SetHardState(pg PG, hs []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	b.wal.HardState(walPG(pg), hs)
	return nil
}

// SetApplyState records pg's apply state (opaque bytes). It becomes the
// durable apply state that LoadRaft returns at the first checkpoint after
// Commit, together with the object changes committed before it.
func (b *Batch) SetApplyState(pg PG, st []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	if b.apply == nil {
		b.apply = map[PG][]byte{}
	}
	b.apply[pg] = append([]byte(nil), st...)
	return nil
}

// CompactLog declares pg's entries below upTo unneeded once the apply state
// set in this batch (or, without one, the current one) is durable: the
// next checkpoint deletes them. Raft reads no entry below upTo afterwards.
func (b *Batch) CompactLog(pg PG, upTo uint64) error {
	if err := b.usable(); err != nil {
		return err
	}
	if b.compact == nil {
		b.compact = map[PG]uint64{}
	}
	b.compact[pg] = max(b.compact[pg], upTo)
	return nil
}
