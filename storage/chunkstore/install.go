package chunkstore

import (
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/wal"
)

// Installing a PG. A replica that joins a PG, or one too far behind for the
// log, is given a snapshot (docs/design-replica-moves.md): BeginInstall
// empties its PG, the objects are copied in with ordinary batches (Write
// and Truncate with the source's versions; no log entry, no apply state),
// and EndInstall gives the PG the snapshot's apply state and a log that
// restarts after the snapshot's index.
//
// A marker key ('r' pool seq 'i'), set and synced before the PG is
// emptied, is deleted only once the copied objects, the apply state and
// the log's new start are all durable. Open empties a PG it finds marked
// (finishInstalls): a crash mid-install leaves an empty PG, never one that
// is part old copy, part new, or whose objects are not those its apply
// state says; the replica then asks for the snapshot again.
//
// The raft hard state survives an install, crash or not: a voter must
// never forget its term and its vote (it could vote twice in a term). The
// marker's value is the hard state from before the install, and the log
// is given it back once dropped; Open restores it from the marker when a
// crash came between the two.
const raftInstall = 'i'

// BeginInstall marks pg as being installed, then empties it as DropPG does
// (errors as DropPG's, ErrBusy included), keeping its raft hard state. The
// caller must not use pg meanwhile but for the install's own batches and
// hard states; an error leaves pg marked, and Open empties it: retry, or
// abandon the install with DropPG.
func (s *Store) BeginInstall(pg PG) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if s.pgInFlight(pg) {
		return fmt.Errorf("%w: %s has placements in flight", ErrBusy, pg)
	}
	hs, err := s.installHardState(pg)
	if err != nil {
		return err
	}
	k := raftKey(pg, raftInstall)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(k, seal(k, hs)) }); err != nil {
		return fmt.Errorf("chunkstore: install %s: mark: %w", pg, badgerErr(err))
	}
	if err := s.installHook(1); err != nil {
		return err
	}
	return s.emptyForInstall(pg, hs)
}

// installHardState is pg's latest raft hard state: the log's, or, when a
// drop took it, the one an earlier install's marker kept.
func (s *Store) installHardState(pg PG) ([]byte, error) {
	if hs, _, _ := s.wal.State(walPG(pg)); hs != nil {
		return hs, nil
	}
	k := raftKey(pg, raftInstall)
	var hs []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err == nil {
			hs, err = unseal(k, v)
		}
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chunkstore: install %s: marker: %w", pg, badgerErr(err))
	}
	if len(hs) == 0 {
		return nil, nil
	}
	return hs, nil
}

// emptyForInstall drops everything of pg but its install marker, then
// gives its log the hard state hs back (nil: none).
func (s *Store) emptyForInstall(pg PG, hs []byte) error {
	if err := s.dropBegin(pg, 0, true); err != nil {
		return err
	}
	if err := s.finishDrop(pg, true); err != nil {
		return err
	}
	if err := s.installHook(2); err != nil {
		return err
	}
	if hs == nil {
		return nil
	}
	var wb wal.Batch
	wb.HardState(walPG(pg), hs)
	s.placeMu.Lock()
	err := s.wal.Commit(&wb)
	s.placeMu.Unlock()
	if err != nil {
		return walErr("install", pg, err)
	}
	return nil
}

// EndInstall ends pg's install: it makes the objects committed since
// BeginInstall durable (a checkpoint), stores applyState as pg's durable
// apply state, restarts pg's empty log at first (the next entry appended
// is first; raft's snapshot index is first-1), and clears the install
// marker, in this order. On success LoadRaft returns applyState, the empty
// log [first, first-1] and the hard state last set (kept through the
// install), at once, also after a crash. Errors:
// ErrInvalid (first is 0, no install of pg is under way, or pg's log has
// entries), ErrClosed, or the file system's, badger's or the WAL's error,
// after which pg stays marked: Open drops it.
func (s *Store) EndInstall(pg PG, applyState []byte, first uint64) error {
	marker := raftKey(pg, raftInstall)
	if err := s.checkInstallEntered(pg, marker, first); err != nil {
		return err
	}
	// The copied objects first, files and metas: a checkpoint syncs every
	// change committed so far. Taken before enter: Checkpoint enters
	// itself, and a second read lock of closeMu would wait behind a Close
	// waiting for the first (sync.RWMutex), for ever.
	if err := s.Checkpoint(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.installHook(3); err != nil {
		return err
	}
	if err := s.endInstall(pg, applyState, first); err != nil {
		return err
	}
	if err := s.installHook(5); err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(marker) }); err != nil {
		return fmt.Errorf("chunkstore: install %s: unmark: %w", pg, badgerErr(err))
	}
	return nil
}

// checkInstallEntered is checkInstall inside enter and leave.
func (s *Store) checkInstallEntered(pg PG, marker []byte, first uint64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.checkInstall(pg, marker, first)
}

// checkInstall refuses EndInstall's arguments unless an install of pg is
// under way with an empty log.
func (s *Store) checkInstall(pg PG, marker []byte, first uint64) error {
	if first == 0 {
		return fmt.Errorf("%w: install %s: log restarting at index 0", ErrInvalid, pg)
	}
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(marker)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%w: install %s: no install under way (BeginInstall)", ErrInvalid, pg)
	}
	if err != nil {
		return fmt.Errorf("chunkstore: install %s: %w", pg, badgerErr(err))
	}
	if _, f, l := s.wal.State(walPG(pg)); l >= f {
		return fmt.Errorf("%w: install %s: the log holds entries [%d, %d]", ErrInvalid, pg, f, l)
	}
	return nil
}

// endInstall stores pg's apply state and restarts its log, holding ckptMu
// so that no checkpoint writes pg's apply state meanwhile. The slots that
// the copy's writes left are released: their metas are durable (the
// checkpoint EndInstall took), and nothing else touched pg since. The
// highest version applied becomes the snapshot's index, first-1: the
// copy's versions may pass it, and a later checkpoint's claims must follow
// the entries applied from first on (checkpoint, leftIndex).
func (s *Store) endInstall(pg PG, applyState []byte, first uint64) error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	k := raftKey(pg, raftApply)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(k, seal(k, applyState)) }); err != nil {
		return fmt.Errorf("chunkstore: install %s: apply state: %w", pg, badgerErr(err))
	}
	s.mu.Lock()
	s.durable[pg] = append([]byte(nil), applyState...)
	delete(s.pending, pg)
	s.applied[pg] = first - 1
	s.mu.Unlock()
	if err := s.installHook(4); err != nil {
		return err
	}
	var wb wal.Batch
	wb.Compact(walPG(pg), first)
	s.placeMu.Lock()
	if err := s.wal.Commit(&wb); err != nil {
		s.placeMu.Unlock()
		return walErr("install", pg, err)
	}
	s.claims.checkpointed(pg, math.MaxUint64)
	gone := s.claims.takeGone()
	s.placeMu.Unlock()
	s.reclaim(gone)
	return nil
}

// installHook is a point where a test stops an install as a crash would;
// nil in a running store.
func (s *Store) installHook(step int) error {
	if s.installStop != nil {
		return s.installStop(step)
	}
	return nil
}

// finishInstalls empties the PGs whose install a crash or an error cut
// short, keeping their hard states (Open, after finishDrops and before the
// log and the apply states are read).
func (s *Store) finishInstalls() error {
	pgs, err := s.markedPGs(raftInstall)
	if err != nil {
		return err
	}
	for _, pg := range pgs {
		s.log.Warn("emptying a pg whose snapshot install a crash or an error interrupted; the replica asks for it again", zap.Stringer("pg", pg))
		if err := s.abortInstall(pg); err != nil {
			return err
		}
	}
	return nil
}

// AbortInstall gives up pg's install: the PG is emptied but for its hard
// state and the install marker cleared, durably, as an Open after a crash
// would. An install that is not under way (never begun, ended, or
// BeginInstall refused before marking) is left alone: nil. The PG may be
// used again once it returns nil; any other error leaves the marker, and
// the next Open empties the PG (the owner should stop using it: a log
// appended meanwhile would go too).
func (s *Store) AbortInstall(pg PG) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	k := raftKey(pg, raftInstall)
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(k)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("chunkstore: abort install %s: %w", pg, badgerErr(err))
	}
	return s.abortInstall(pg)
}

// abortInstall empties the marked pg but for its hard state, then clears
// its marker.
func (s *Store) abortInstall(pg PG) error {
	hs, err := s.installHardState(pg)
	if err != nil {
		return err
	}
	if err := s.emptyForInstall(pg, hs); err != nil {
		return err
	}
	k := raftKey(pg, raftInstall)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(k) }); err != nil {
		return fmt.Errorf("chunkstore: install %s: unmark: %w", pg, badgerErr(err))
	}
	return nil
}
