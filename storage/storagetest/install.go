package storagetest

import (
	"bytes"
	"fmt"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// BeginInstall empties pg but for its hard state and marks it as being
// installed, durably at once, as chunkstore.Store.BeginInstall does: a
// Clone taken before EndInstall finds the PG emptied, with its latest hard
// state.
func (s *MemStore) BeginInstall(pg PG) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.pgLocked(pg)
	*d = pgData{hard: d.hard, ents: map[uint64][]byte{}, objs: map[string]*object{}, installing: true}
	return nil
}

// EndInstall ends pg's install as chunkstore.Store.EndInstall does: a
// checkpoint of every PG, then applyState as pg's durable apply state and
// its empty log restarting at first. Errors wrap chunkstore.ErrInvalid
// (first 0, no install under way, or entries in the log).
func (s *MemStore) EndInstall(pg PG, applyState []byte, first uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.pgs[pg]
	switch {
	case first == 0:
		return fmt.Errorf("storagetest: install %s at index 0: %w", pg, chunkstore.ErrInvalid)
	case d == nil || !d.installing:
		return fmt.Errorf("storagetest: install %s: none under way: %w", pg, chunkstore.ErrInvalid)
	case len(d.ents) > 0:
		return fmt.Errorf("storagetest: install %s: the log holds entries: %w", pg, chunkstore.ErrInvalid)
	}
	s.checkpointLocked()
	d.apply, d.ckApply = bytes.Clone(applyState), bytes.Clone(applyState)
	d.compact, d.pendCompact = first, 0
	d.installing = false
	return nil
}

// AbortInstall empties pg but for its hard state when an install is under
// way, as chunkstore.Store.AbortInstall does; otherwise it does nothing.
func (s *MemStore) AbortInstall(pg PG) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.pgs[pg]; d != nil && d.installing {
		*d = pgData{hard: d.hard, ents: map[uint64][]byte{}, objs: map[string]*object{}}
	}
	return nil
}

// DropPG removes pg and everything of it, durably at once (an install
// under way too), and keeps tomb if above the one kept, as
// chunkstore.Store.DropPG does.
func (s *MemStore) DropPG(pg PG, tomb uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pgs, pg)
	if tomb > s.tombs[pg] {
		if s.tombs == nil {
			s.tombs = map[PG]uint64{}
		}
		s.tombs[pg] = tomb
	}
	return nil
}
