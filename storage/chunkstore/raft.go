package chunkstore

import (
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
)

// RaftState is a PG's persisted raft state. All byte slices are the caller's.
type RaftState struct {
	HardState  []byte // nil if never set
	ApplyState []byte // opaque bytes set by SetApplyState, nil if never set
	FirstIndex uint64 // first log index present; 0 if the log is empty and never compacted; after CompactLog(upTo) it is upTo
	LastIndex  uint64 // last log index present, or FirstIndex-1 (0 when never used) if the log is empty
}

// raftBounds are a PG's log bounds. first == 0: empty and never compacted;
// last == first-1: empty after compaction.
type raftBounds struct{ first, last uint64 }

func (b raftBounds) empty() bool { return b.first == 0 || b.last < b.first }

// LoadRaft returns pg's raft state. A PG with no raft state returns a zero
// RaftState and no error. Errors: ErrClosed, ErrCorrupt.
func (s *Store) LoadRaft(pg PG) (RaftState, error) {
	if err := s.enter(); err != nil {
		return RaftState{}, err
	}
	defer s.leave()
	bd, err := s.bounds(pg)
	if err != nil {
		return RaftState{}, err
	}
	st := RaftState{FirstIndex: bd.first, LastIndex: bd.last}
	l := loc{op: "load raft", pg: pg, block: -1}
	err = s.db.View(func(txn *badger.Txn) error {
		hs, found, err := get(txn, raftKey(pg, raftHard), l)
		if err != nil {
			return err
		}
		if found {
			st.HardState = hs
		}
		as, found, err := get(txn, raftKey(pg, raftApply), l)
		if err != nil {
			return err
		}
		if found {
			st.ApplyState = as
		}
		return nil
	})
	return st, err
}

// Entries returns the stored log entries [lo, hi) of pg. It stops before the
// entry that would take the total past maxBytes, but returns at least one
// entry if lo < hi (raft's MaxSize rule). A missing entry in the range is an
// error wrapping ErrNotFound; callers compare with LoadRaft's bounds to tell
// compacted from unavailable. Errors: ErrNotFound, ErrCorrupt, ErrClosed.
func (s *Store) Entries(pg PG, lo, hi uint64, maxBytes uint64) ([][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		var total uint64
		l := loc{op: "entries", pg: pg, block: -1}
		for i := lo; i < hi; i++ {
			e, found, err := get(txn, entryKey(pg, i), l)
			if err != nil {
				var ce *CorruptError
				if errors.As(err, &ce) {
					ce.Detail = fmt.Sprintf("entry %d: %s", i, ce.Detail)
				}
				return err
			}
			if !found {
				return fmt.Errorf("chunkstore: entries pg %s index %d: %w", pg, i, ErrNotFound)
			}
			total += uint64(len(e))
			if len(out) > 0 && total > maxBytes {
				break
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// bounds returns pg's committed log bounds from the cache, loading them from
// disk on first use.
func (s *Store) bounds(pg PG) (raftBounds, error) {
	s.mu.Lock()
	bd, ok := s.raft[pg]
	s.mu.Unlock()
	if ok {
		return bd, nil
	}
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		bd, err = loadBounds(txn, pg)
		return err
	})
	if err != nil {
		return raftBounds{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.raft[pg]; ok { // a commit published newer bounds meanwhile
		return cur, nil
	}
	s.raft[pg] = bd
	return bd, nil
}

// publishBounds records bounds made durable by a commit.
func (s *Store) publishBounds(m map[PG]raftBounds) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pg, bd := range m {
		s.raft[pg] = bd
	}
}

// forgetBounds drops cached bounds after a failed or partial batch, so the
// next use reloads what is on disk.
func (s *Store) forgetBounds(m map[PG]raftBounds) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pg := range m {
		delete(s.raft, pg)
	}
}

// loadBounds derives pg's log bounds from disk: the compaction point, and
// the lowest and highest entries at or above it.
func loadBounds(txn *badger.Txn, pg PG) (raftBounds, error) {
	l := loc{op: "load raft bounds", pg: pg, block: -1}
	var c uint64
	p, found, err := get(txn, raftKey(pg, raftCompact), l)
	if err != nil {
		return raftBounds{}, err
	}
	if found {
		var ok bool
		if c, ok = decodeU64(p); !ok {
			return raftBounds{}, l.corrupt("malformed compaction point", nil)
		}
	}
	lo, okLo := edgeEntry(txn, pg, max(c, 1), false)
	hi, okHi := edgeEntry(txn, pg, math.MaxUint64, true)
	switch {
	case okLo && okHi && hi >= lo:
		return raftBounds{first: lo, last: hi}, nil
	case c > 0:
		return raftBounds{first: c, last: c - 1}, nil
	default:
		return raftBounds{}, nil
	}
}

// edgeEntry returns the index of the first entry >= from (or, reverse, the
// last entry <= from) of pg.
func edgeEntry(txn *badger.Txn, pg PG, from uint64, reverse bool) (uint64, bool) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: entryPrefix(pg), Reverse: reverse})
	defer it.Close()
	for it.Seek(entryKey(pg, from)); it.Valid(); it.Next() {
		if idx, ok := entryIndexOfKey(it.Item().Key()); ok {
			return idx, true
		}
	}
	return 0, false
}
