package chunkstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/wal"
)

// Dropping a PG. An OSD drops its replica of a PG that moved away, and
// empties one before it installs a snapshot (docs/design-replica-moves.md).
// Everything the store holds for the PG goes: its raft log and hard state
// (the WAL's Drop record), its durable apply state and object metas (the
// meta DB), and its object files (the PG's directory).
//
// Those live in three places that no one commit covers, so a marker key
// ('r' pool seq 'd'), written and synced first, says the PG is being
// dropped; it is deleted last. Open finishes every drop it finds marked
// before it reads anything of the PG (finishDrops): a crash at any point
// leaves either the whole PG, or a marked PG that Open then drops, never a
// PG with some of its state gone (a log without its apply state would be
// replayed over objects that no longer hold what it was compacted over).
// A build from before DropPG ignores the marker: a store a crash left with
// a drop unfinished must be opened by this build once before a downgrade.
const raftDrop = 'd'

// raftTomb ('r' pool seq 't') outlives drops: DropPG's tomb, the floor
// below which the OSD never gives a later copy of the PG a raft seat (one
// above every seat a dropped copy answered for: storage/osd/seat.go). The
// highest given is kept. 8 bytes, big-endian.
const raftTomb = 't'

// ErrBusy: the PG is in use (DropPG).
var ErrBusy = errors.New("chunkstore: pg in use")

// DropPG removes pg and everything the store holds for it (see above),
// durably. The caller must have stopped using pg, and must not use it
// again until DropPG has returned nil: no batch that touches it may be open
// or committing, and no read or Preplace of it may run. A preplacement of
// pg still live (Preplace not yet adopted or released) fails the call with
// ErrBusy before anything changes. Any other error leaves the PG marked as
// being dropped, and the next Open finishes the drop: retry until nil (or
// stop the store) before the PG is written again, or that Open drops the
// new writes too. Dropping a PG the store does not hold succeeds. Other
// PGs are served meanwhile; checkpoints wait only until pg's log is
// dropped, not while its files are deleted. tomb is kept past the drop, in
// the same transaction as the marker (LoadRaft's Tomb; a lower one than
// kept already changes nothing).
func (s *Store) DropPG(pg PG, tomb uint64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.dropBegin(pg, tomb, false); err != nil {
		return err
	}
	return s.finishDrop(pg, false)
}

// dropBegin marks pg as being dropped, forgets it in memory and drops its
// log. It holds ckptMu, so that no checkpoint writes anything of pg (a
// meta from the backlog, an apply state, a compaction that would bring
// its log back) once forgotten. The drop marker is set, and an install
// marker (install.go) deleted unless forInstall, in one transaction: a
// crash never leaves a half-installed PG without a marker. A tomb above
// the one kept replaces it, in the same transaction.
func (s *Store) dropBegin(pg PG, tomb uint64, forInstall bool) error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if s.pgInFlight(pg) {
		return fmt.Errorf("%w: %s has placements in flight", ErrBusy, pg)
	}
	k := raftKey(pg, raftDrop)
	err := s.db.Update(func(txn *badger.Txn) error {
		if !forInstall {
			if err := txn.Delete(raftKey(pg, raftInstall)); err != nil {
				return err
			}
		}
		if old, err := tombIn(txn, pg); err != nil {
			return err
		} else if tomb > old {
			tk := raftKey(pg, raftTomb)
			if err := txn.Set(tk, seal(tk, binary.BigEndian.AppendUint64(nil, tomb))); err != nil {
				return err
			}
		}
		return txn.Set(k, seal(k, nil))
	})
	if err != nil {
		return fmt.Errorf("chunkstore: drop %s: mark: %w", pg, badgerErr(err))
	}
	if err := s.dropHook(1); err != nil {
		return err
	}
	s.forgetPG(pg)
	return s.dropLog(pg)
}

// tombIn reads pg's tomb (raftTomb) in txn: 0 if none.
func tombIn(txn *badger.Txn, pg PG) (uint64, error) {
	k := raftKey(pg, raftTomb)
	it, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	p, err := unseal(k, v)
	if err == nil && len(p) != 8 {
		err = errUnreadable
	}
	if err != nil {
		return 0, fmt.Errorf("%w: pg %s tomb: %v", ErrCorrupt, pg, err)
	}
	return binary.BigEndian.Uint64(p), nil
}

// dropHook is a point where a test stops DropPG as a crash would; nil
// in a running store.
func (s *Store) dropHook(step int) error {
	if s.dropStop != nil {
		return s.dropStop(step)
	}
	return nil
}

// pgInFlight reports whether pg has placements no batch has committed yet
// (preplacements, or a batch committing).
func (s *Store) pgInFlight(pg PG) bool {
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	for k := range s.inflight {
		if k.pg == pg {
			return true
		}
	}
	for pp := range s.pre.live {
		if pp.pl.pg == pg {
			return true
		}
	}
	return false
}

// forgetPG drops what the store keeps in memory about pg. The caller holds
// ckptMu, so no checkpoint (or flush of metas) runs meanwhile.
func (s *Store) forgetPG(pg PG) {
	s.backlog.dropPG(pg)
	s.metas.dropPG(pg)
	s.mu.Lock()
	delete(s.pending, pg)
	delete(s.recovery, pg)
	delete(s.applied, pg)
	delete(s.durable, pg)
	s.mu.Unlock()
	bs := int64(s.cfg.BlockSize)
	keep := s.reserve.runs[:0]
	for _, r := range s.reserve.runs {
		if r.pg != pg {
			keep = append(keep, r)
		} else {
			s.reserve.bytes -= (r.run.hi - r.run.lo) * bs
		}
	}
	s.reserve.runs = keep
	s.files.dropDir(pgDirName(pg))
}

// dropLog drops pg's placements and claims and, in the same placeMu
// section (as a batch's commit keeps its log and claims in step), its raft
// log and hard state.
func (s *Store) dropLog(pg PG) error {
	var wb wal.Batch
	wb.Drop(walPG(pg))
	s.placeMu.Lock()
	delete(s.placements, pg)
	s.claims.dropPG(pg)
	err := s.wal.Commit(&wb)
	s.placeMu.Unlock()
	if err != nil {
		return walErr("drop", pg, err)
	}
	return s.dropHook(2)
}

// finishDrop deletes pg's metas, apply state and files, then its marker,
// once its log is dropped (dropBegin, or Open: finishDrops). Each step may
// have been done already (Open finishing a drop a crash cut short). An
// install marker (install.go) goes with the rest unless keepInstall.
func (s *Store) finishDrop(pg PG, keepInstall bool) error {
	marker := raftKey(pg, raftDrop)
	keep := [][]byte{marker, raftKey(pg, raftTomb)}
	if keepInstall {
		keep = append(keep, raftKey(pg, raftInstall))
	}
	if err := s.deletePGKeys(pg, keep); err != nil {
		return fmt.Errorf("chunkstore: drop %s: %w", pg, err)
	}
	if err := s.dropHook(3); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(s.files.root, pgDirName(pg))); err != nil {
		return fmt.Errorf("chunkstore: drop %s: %w", pg, err)
	}
	if err := syncDir(s.files.root); err != nil {
		return fmt.Errorf("chunkstore: drop %s: %w", pg, err)
	}
	if err := s.dropHook(4); err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(marker) }); err != nil {
		return fmt.Errorf("chunkstore: drop %s: unmark: %w", pg, badgerErr(err))
	}
	return nil
}

// deletePGKeys deletes every meta DB key of pg but those in keep (synced:
// the DB syncs its writes).
func (s *Store) deletePGKeys(pg PG, keep [][]byte) error {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		for _, kind := range pgKinds {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pgPrefix(kind, pg, 0)})
			for it.Rewind(); it.Valid(); it.Next() {
				if k := it.Item().KeyCopy(nil); !slices.ContainsFunc(keep, func(x []byte) bool { return bytes.Equal(x, k) }) {
					keys = append(keys, k)
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return badgerErr(err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return badgerErr(err)
		}
	}
	return badgerErr(wb.Flush())
}

// finishDrops finishes the drops a crash cut short (Open, before the log
// and the apply states are read). An install marker still set is one of
// BeginInstall's drop (DropPG deletes it with the drop marker's setting):
// it stays, for finishInstalls.
func (s *Store) finishDrops() error {
	pgs, err := s.markedPGs(raftDrop)
	if err != nil {
		return err
	}
	for _, pg := range pgs {
		s.log.Warn("finishing the drop of a pg that a crash or an error interrupted", zap.Stringer("pg", pg))
		if err := s.dropLog(pg); err != nil {
			return err
		}
		if err := s.finishDrop(pg, true); err != nil {
			return err
		}
	}
	return nil
}

// markedPGs lists the PGs that have the marker key sub ('r' pool seq sub).
func (s *Store) markedPGs(sub byte) ([]PG, error) {
	var pgs []PG
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kindRaft}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if pg, ok := pgOfKey(k); ok && len(k) == pgPrefixLen+1 && k[pgPrefixLen] == sub {
				pgs = append(pgs, pg)
			}
		}
		return nil
	})
	return pgs, badgerErr(err)
}

// dropDir forgets the files of the PG directory dir: open ones are closed,
// and none of them is synced at the next checkpoint.
func (c *fileCache) dropDir(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := func(rel string) bool { return rel == dir || strings.HasPrefix(rel, dir+string(filepath.Separator)) }
	for rel, of := range c.open {
		if in(rel) {
			if of.elem != nil {
				c.idle.Remove(of.elem)
			}
			delete(c.open, rel)
			of.close()
		}
	}
	maps.DeleteFunc(c.dirty, func(rel string, _ struct{}) bool { return in(rel) })
	maps.DeleteFunc(c.dirs, func(rel string, _ struct{}) bool { return in(rel) })
	maps.DeleteFunc(c.unsynced, func(rel string, _ uint64) bool { return in(rel) })
	maps.DeleteFunc(c.syncedOnce, func(rel string, _ bool) bool { return in(rel) })
}
