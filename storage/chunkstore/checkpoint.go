package chunkstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tsumiki-storage/tsumiki/storage/wal"
)

// Checkpoints. Commit makes the raft log durable and applies object changes
// to files and meta without syncing them. A checkpoint then
//
//  1. takes the apply states committed so far, then the set of files and
//     directories written so far (in this order: a batch marks its files
//     before it publishes its apply state, so every change an apply state
//     covers is in the taken set or an earlier, synced one),
//  2. writes the object metas applied so far to the meta DB (they are
//     written behind, see metabacklog.go), makes the files and
//     directories durable (one syncfs, syncfs_linux.go) and syncs the
//     meta DB,
//  3. stores the apply states in the meta DB and syncs it again,
//  4. deletes the raft log entries those apply states no longer need.
//
// A crash at any point leaves the last checkpoint's apply states, with every
// change they cover on disk and the log from there on still present: the
// OSD re-applies it (Recover explains the one relaxation replay needs).

// pendingState is a PG's apply state and log compaction not yet durable.
type pendingState struct {
	apply   []byte // nil: unchanged since the last checkpoint
	compact uint64 // delete log entries below this once apply is durable
	through uint64 // the highest operation version apply covers
}

// notePending publishes a committed batch's apply states and compactions.
func (s *Store) notePending(apply map[PG][]byte, compact map[PG]uint64, bytes int64) {
	s.mu.Lock()
	for pg, st := range apply {
		p := s.pending[pg]
		p.apply = st
		p.through = s.applied[pg]
		s.pending[pg] = p
	}
	for pg, c := range compact {
		p := s.pending[pg]
		p.compact = max(p.compact, c)
		s.pending[pg] = p
	}
	s.since += bytes
	due := s.since >= s.cfg.CheckpointBytes
	s.mu.Unlock()
	if due {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Checkpoint makes everything committed so far durable and trims the raft
// log (see above). It is safe to call concurrently with Commit. Errors:
// ErrClosed, or the file system's or badger's error; after an fsync error
// the device's state is unknown and the owner should stop (the log since
// the last good checkpoint is kept, so a restart re-applies it).
func (s *Store) Checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.mu.Lock()
	pend := s.pending
	s.pending = map[PG]pendingState{}
	s.since = 0
	s.mu.Unlock()
	files, dirs := s.files.takeDirty()
	if len(pend) == 0 && len(files) == 0 && len(dirs) == 0 && s.backlog.empty() {
		return nil
	}
	if err := s.checkpoint(pend, files, dirs); err != nil {
		s.files.giveBack(files, dirs)
		s.mu.Lock()
		for pg, old := range pend {
			p, ok := s.pending[pg]
			if !ok || p.apply == nil {
				p.apply, p.through = old.apply, old.through
			}
			p.compact = max(p.compact, old.compact)
			s.pending[pg] = p
		}
		s.mu.Unlock()
		return fmt.Errorf("chunkstore: checkpoint %q: %w", s.cfg.Dir, err)
	}
	return nil
}

func (s *Store) checkpoint(pend map[PG]pendingState, files, dirs []string) error {
	// The metas of every change the apply states cover were put in the
	// backlog before those states were published (Commit), so they are in
	// this flush or an earlier one.
	if err := s.flushMetas(); err != nil {
		return err
	}
	if err := s.syncer.sync(files, dirs); err != nil {
		return err
	}
	if err := s.db.Sync(); err != nil {
		return badgerErr(err)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		for pg, p := range pend {
			if p.apply != nil {
				k := raftKey(pg, raftApply)
				if err := txn.Set(k, seal(k, p.apply)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return badgerErr(err)
	}
	if err := s.db.Sync(); err != nil {
		return badgerErr(err)
	}
	s.mu.Lock()
	for pg, p := range pend {
		if p.apply != nil {
			s.durable[pg] = p.apply
		}
	}
	s.mu.Unlock()
	var wb wal.Batch
	for pg, p := range pend {
		if p.compact > 0 {
			wb.Compact(walPG(pg), p.compact)
		}
	}
	s.placeMu.Lock()
	if err := s.wal.Commit(&wb); err != nil {
		s.placeMu.Unlock()
		return walErr("checkpoint", PG{}, err)
	}
	for pg, p := range pend {
		if p.compact > 0 {
			s.forgetPlacements(pg, func(idx uint64) bool { return idx < p.compact })
			s.claims.compacted(pg, p.compact)
		}
		if p.apply != nil {
			s.claims.checkpointed(pg, p.through)
		}
	}
	gone := s.claims.takeGone()
	s.placeMu.Unlock()
	s.reclaim(gone)
	return nil
}

// syncEach fsyncs files and then dirs, all relative to root; paths gone
// since are skipped.
func syncEach(root string, files, dirs []string) error {
	if err := syncPaths(root, files); err != nil {
		return err
	}
	for _, d := range dirs {
		if err := syncDir(filepath.Join(root, d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// RunCheckpoints takes a checkpoint every CheckpointInterval, and earlier
// when CheckpointBytes of object data were applied, until ctx is done; then
// it returns nil (Close takes the last one). A failed checkpoint is
// returned: the owner should stop the OSD.
//
// It reads the wall clock through time.Ticker: checkpoint timing is not a
// decision that tests simulate.
func (s *Store) RunCheckpoints(ctx context.Context) error {
	t := time.NewTicker(s.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
		if err := s.Checkpoint(); err != nil {
			return err
		}
	}
}

// Recover tells the store that pg's operations with a version (raft index)
// up to through are being re-applied after a restart. A crash between
// checkpoints can leave a block whose bytes and checksum come from
// different writes; every such block is rewritten by the replay, but a
// partial-block write reads it first. For operations up to through, that
// read accepts a checksum mismatch (the bytes it keeps are the ones no
// replayed operation changes, which a torn write cannot have changed
// either). Later operations treat a mismatch as corruption. The OSD calls
// it with the commit index it loaded, before applying anything.
func (s *Store) Recover(pg PG, through uint64) {
	s.mu.Lock()
	s.recovery[pg] = through
	s.mu.Unlock()
}

func (s *Store) recoveringThrough(pg PG) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovery[pg]
}
