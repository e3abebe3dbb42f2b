package chunkstore

import (
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"

	"github.com/tsumiki-storage/tsumiki/storage/wal"
)

// RaftState is a PG's persisted raft state. All byte slices are the caller's.
type RaftState struct {
	HardState  []byte // nil if never set
	ApplyState []byte // the apply state of the last checkpoint (see Batch), nil if never set
	FirstIndex uint64 // first log index present; 0 if the log was never written
	LastIndex  uint64 // last log index present, or FirstIndex-1 (0 when never used) if the log is empty
	Tomb       uint64 // the highest tomb a DropPG of pg gave (kept across drops), 0 if none
}

// LoadRaft returns pg's raft state. A PG with no raft state returns a zero
// RaftState and no error. The log may start below the apply state's
// compaction point (entries are deleted only after a checkpoint). Errors:
// ErrClosed, ErrCorrupt.
func (s *Store) LoadRaft(pg PG) (RaftState, error) {
	if err := s.enter(); err != nil {
		return RaftState{}, err
	}
	defer s.leave()
	var st RaftState
	hs, first, last := s.wal.State(walPG(pg))
	st.HardState = hs
	if first != 1 || last != 0 { // (1, 0): never written
		st.FirstIndex, st.LastIndex = first, last
	}
	s.mu.Lock()
	if a := s.durable[pg]; a != nil {
		st.ApplyState = append([]byte(nil), a...)
	}
	s.mu.Unlock()
	err := s.db.View(func(txn *badger.Txn) (err error) {
		st.Tomb, err = tombIn(txn, pg)
		return err
	})
	if err != nil {
		return RaftState{}, fmt.Errorf("chunkstore: load raft of %s: %w", pg, badgerErr(err))
	}
	return st, nil
}

// Entries returns the stored log entries [lo, hi) of pg. It stops before the
// entry that would take the total past maxBytes, but returns at least one
// entry if lo < hi (raft's MaxSize rule). A range outside the stored log is
// an error wrapping ErrNotFound. A placed entry whose data is damaged fails
// the call with ErrDamagedEntry (see EntryHeads and ApplyPlaced). Errors:
// ErrNotFound, ErrCorrupt, ErrDamagedEntry, ErrClosed.
func (s *Store) Entries(pg PG, lo, hi uint64, maxBytes uint64) ([][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if lo >= hi {
		return nil, nil
	}
	ents, marks, err := s.wal.EntriesMarked(walPG(pg), lo, hi, maxBytes)
	if err != nil {
		return nil, walErr("entries", pg, err)
	}
	total := uint64(0)
	for i, marked := range marks {
		size := uint64(len(ents[i]))
		var rec *placedRecord
		if marked {
			if rec, err = s.decodePlacedAt("entries", pg, lo+uint64(i), ents[i]); err != nil {
				return nil, err
			}
			size = uint64(len(rec.rest)) + uint64(rec.n)*uint64(s.cfg.BlockSize)
		}
		// A placed entry is bigger than its record: keep raft's bound,
		// before reading the data of one that would not be returned.
		if total += size; i > 0 && total > maxBytes {
			return ents[:i], nil
		}
		if rec != nil {
			if ents[i], err = s.entryFromPlaced(pg, rec); err != nil {
				return nil, err
			}
		}
	}
	return ents, nil
}

// EntryHead is a logged entry as far as the log itself holds it. An entry
// logged whole is Rest with Data 0. A placed entry is Rest with Data bytes
// left out at Cut: the entry's bytes are Rest[:Cut], then its data (kept
// in its object's slots), then Rest[Cut:]. The slices are the caller's.
type EntryHead struct {
	Rest []byte
	Cut  int
	Data int
}

// EntryHeads returns the heads of pg's stored entries [lo, hi): what
// Entries returns without reading the data of placed entries, so it is
// cheap and does not fail when that data is damaged. A range outside the
// stored log is an error wrapping ErrNotFound. Errors: ErrNotFound,
// ErrCorrupt (of the log itself), ErrClosed.
func (s *Store) EntryHeads(pg PG, lo, hi uint64) ([]EntryHead, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if lo >= hi {
		return nil, nil
	}
	ents, marks, err := s.wal.EntriesMarked(walPG(pg), lo, hi, math.MaxUint64)
	if err != nil {
		return nil, walErr("entry heads", pg, err)
	}
	heads := make([]EntryHead, len(ents))
	for i, marked := range marks {
		if !marked {
			heads[i] = EntryHead{Rest: ents[i]}
			continue
		}
		rec, err := s.decodePlacedAt("entry heads", pg, lo+uint64(i), ents[i])
		if err != nil {
			return nil, err
		}
		heads[i] = EntryHead{Rest: rec.rest, Cut: rec.cut, Data: int(rec.n) * s.cfg.BlockSize}
	}
	return heads, nil
}

// decodePlacedAt decodes the placed record of pg's entry at index; a bad
// record is corruption, reported for op.
func (s *Store) decodePlacedAt(op string, pg PG, index uint64, raw []byte) (*placedRecord, error) {
	rec, err := decodePlaced(raw, int64(s.cfg.BlockSize))
	if err != nil {
		return nil, &CorruptError{Op: op, PG: pg, Block: -1, Detail: fmt.Sprintf("placed entry %d", index), Err: err}
	}
	return rec, nil
}

// entryFromPlaced rebuilds an entry from its placed record.
func (s *Store) entryFromPlaced(pg PG, rec *placedRecord) ([]byte, error) {
	// placeMu: the claims that keep the slots intact are not released
	// (by a checkpoint's compaction) while the slots are read.
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	return s.rebuildPlaced(pg, rec)
}

func walPG(pg PG) wal.PG { return wal.PG{Pool: pg.Pool, Seq: pg.Seq} }

// walErr classifies an error of the raft log.
func walErr(op string, pg PG, err error) error {
	switch {
	case errors.Is(err, wal.ErrNotFound):
		return fmt.Errorf("chunkstore: %s pg %s: %w: %w", op, pg, ErrNotFound, err)
	case errors.Is(err, wal.ErrCorrupt):
		return &CorruptError{Op: op, PG: pg, Block: -1, Detail: "raft log", Err: err}
	case errors.Is(err, wal.ErrClosed):
		return fmt.Errorf("chunkstore: %s: %w: %w", op, ErrClosed, err)
	}
	return fmt.Errorf("chunkstore: %s pg %s: raft log: %w", op, pg, err)
}

// loadApplyStates reads every PG's durable apply state.
func (s *Store) loadApplyStates() (map[PG][]byte, error) {
	out := map[PG][]byte{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kindRaft}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			pg, ok := pgOfKey(k)
			if !ok || len(k) != pgPrefixLen+1 || k[pgPrefixLen] != raftApply {
				continue
			}
			p, _, err := get(txn, k, loc{op: "open", pg: pg, block: -1})
			if err != nil {
				return err
			}
			out[pg] = p
		}
		return nil
	})
	return out, err
}
