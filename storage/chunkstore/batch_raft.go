package chunkstore

import (
	"fmt"
)

// AppendEntries stores ents as log entries first, first+1, ... of pg and
// deletes every stored entry at or after first that the batch does not
// overwrite (the conflicting suffix). Entries below FirstIndex are ignored
// (as raft's MemoryStorage does). Errors: ErrInvalid (first == 0, or first
// past LastIndex+1: a gap), ErrTooLarge (an entry longer than the value-log
// file size), ErrClosed, badger's error.
//
// Old entries are deleted from the top before the new ones are written, so
// a crash in a split batch leaves a contiguous log, never old entries after
// new ones.
func (b *Batch) AppendEntries(pg PG, first uint64, ents [][]byte) error {
	if len(ents) == 0 {
		return nil
	}
	if first == 0 {
		return fmt.Errorf("chunkstore: append entries pg %s: %w: index 0", pg, ErrInvalid)
	}
	for i, e := range ents {
		if int64(len(e))+4 > b.s.cfg.ValueLogFileSize {
			return fmt.Errorf("chunkstore: append entries pg %s index %d: %w: %d bytes exceeds value-log file size %d",
				pg, first+uint64(i), ErrTooLarge, len(e), b.s.cfg.ValueLogFileSize)
		}
	}
	return b.apply(func() error {
		bd, err := b.bounds(pg)
		if err != nil {
			return err
		}
		if bd.first != 0 {
			if first > bd.last+1 {
				return fmt.Errorf("chunkstore: append entries pg %s: %w: first %d leaves a gap after last %d",
					pg, ErrInvalid, first, bd.last)
			}
			if first < bd.first {
				skip := bd.first - first
				if skip >= uint64(len(ents)) {
					return nil
				}
				ents, first = ents[skip:], bd.first
			}
			for i := bd.last; i >= first && i >= bd.first; i-- {
				if err := b.del(entryKey(pg, i)); err != nil {
					return err
				}
			}
		}
		for i, e := range ents {
			k := entryKey(pg, first+uint64(i))
			if err := b.set(k, seal(k, e)); err != nil {
				return err
			}
		}
		if bd.first == 0 {
			bd.first = first
		}
		bd.last = first + uint64(len(ents)) - 1
		b.overlay[pg] = bd
		return nil
	})
}

// SetHardState stores pg's raft hard state (opaque bytes). Errors:
// ErrClosed, badger's error.
func (b *Batch) SetHardState(pg PG, hs []byte) error {
	return b.apply(func() error {
		k := raftKey(pg, raftHard)
		return b.set(k, seal(k, hs))
	})
}

// SetApplyState stores pg's apply state (opaque bytes: applied index, term,
// conf state). Put it last in a batch: it marks what the batch applied.
// Errors: ErrClosed, badger's error.
func (b *Batch) SetApplyState(pg PG, st []byte) error {
	return b.apply(func() error {
		k := raftKey(pg, raftApply)
		return b.set(k, seal(k, st))
	})
}

// CompactLog deletes pg's entries below upTo; FirstIndex becomes upTo (and
// LastIndex upTo-1 if no entry at or above upTo remains). upTo at or below
// FirstIndex is a no-op. Errors: ErrCorrupt (the stored compaction point),
// ErrClosed, badger's error.
func (b *Batch) CompactLog(pg PG, upTo uint64) error {
	return b.apply(func() error {
		bd, err := b.bounds(pg)
		if err != nil {
			return err
		}
		if upTo == 0 || upTo <= bd.first {
			return nil
		}
		if !bd.empty() {
			// Ascending, so a crash mid-way leaves a contiguous log.
			for i := bd.first; i < upTo && i <= bd.last; i++ {
				if err := b.del(entryKey(pg, i)); err != nil {
					return err
				}
			}
		}
		k := raftKey(pg, raftCompact)
		if err := b.set(k, seal(k, encodeU64(upTo))); err != nil {
			return err
		}
		if bd.empty() || bd.last < upTo {
			bd.last = upTo - 1
		}
		bd.first = upTo
		b.overlay[pg] = bd
		return nil
	})
}
