package chunkstore

// Bookkeeping of placements and claims across commits, checkpoints and
// restarts (placement.go, claims.go).

// notePlacements updates the store's placements and claims once the batch's
// WAL commit is durable: replaced entries and conversions release theirs,
// new placements take theirs. The caller holds placeMu.
func (b *Batch) notePlacements(convert map[placeKey]*placement) {
	s := b.s
	for pg, t := range b.truncs {
		s.forgetPlacements(pg, func(idx uint64) bool { return idx >= t })
		s.claims.truncated(pg, t)
	}
	for _, pl := range b.placed {
		if convert[placeKey{pl.pg, pl.index}] == nil {
			s.addPlacement(&placement{pg: pl.pg, index: pl.index, rec: pl.rec, runs: pl.runs})
		} else {
			s.placeLanded([]*placement{pl}, true) // logged whole: its slots are stale
		}
	}
	for k := range convert {
		s.forgetPlacements(k.pg, func(idx uint64) bool { return idx == k.index })
		s.claims.released(k.pg, k.index)
	}
	for _, pl := range b.lost {
		s.addPlacement(pl) // claims again: a replay may still flip it in
	}
}

// addPlacement records a placement in the log and claims its slots. The
// caller holds placeMu.
func (s *Store) addPlacement(pl *placement) {
	if s.placements[pl.pg] == nil {
		s.placements[pl.pg] = map[uint64]*placement{}
	}
	s.placements[pl.pg][pl.index] = pl
	s.claims.placed(pl.pg, pl.rec.name, pl.index, pl.runs)
}

// forgetPlacements drops pg's placements whose index gone says; the caller
// releases their claims. The caller holds placeMu.
func (s *Store) forgetPlacements(pg PG, gone func(idx uint64) bool) {
	for idx := range s.placements[pg] {
		if gone(idx) {
			delete(s.placements[pg], idx)
		}
	}
	if len(s.placements[pg]) == 0 {
		delete(s.placements, pg)
	}
}

// loadPlacements rebuilds the placements and claims from the log's marked
// entries (at open).
func (s *Store) loadPlacements() error {
	bs := int64(s.cfg.BlockSize)
	for _, wpg := range s.wal.PGs() {
		pg := PG{Pool: wpg.Pool, Seq: wpg.Seq}
		for _, idx := range s.wal.Marked(wpg) {
			raw, _, err := s.wal.EntriesMarked(wpg, idx, idx+1, 0)
			if err != nil {
				return walErr("open", pg, err)
			}
			rec, err := s.decodePlacedAt("open", pg, idx, raw[0])
			if err != nil {
				return err
			}
			// A lost record claims its slots too: a replay may still
			// apply its entry by flipping (ApplyPlaced).
			s.addPlacement(&placement{pg: pg, index: idx, rec: rec, runs: rec.slotRuns(bs)})
		}
	}
	return nil
}

// leftClaim is a left claim made while the batch applied.
type leftClaim struct {
	pg    PG
	name  string
	index uint64
	runs  []slotRun
}

// leftIndex is the index a left claim of op is released by: its version,
// or for a delete (which has none) one past the PG's highest version
// applied before it, which every later operation's version reaches.
func (b *Batch) leftIndex(op *queuedOp) uint64 {
	if op.kind != opDelete {
		return op.version
	}
	v := b.s.appliedVersion(op.id.pg)
	for i := range b.ops {
		if o := &b.ops[i]; o == op {
			break
		} else if o.id.pg == op.id.pg {
			v = max(v, o.version)
		}
	}
	return v + 1
}

// noteApplied records the batch's left claims and the highest version it
// applied per PG, which the next apply state published covers (notePending
// hands it to the checkpoint that releases left claims up to it).
func (b *Batch) noteApplied() {
	s := b.s
	if len(b.left) > 0 {
		s.placeMu.Lock()
		for _, lc := range b.left {
			s.claims.left(lc.pg, lc.name, lc.index, lc.runs)
		}
		s.placeMu.Unlock()
	}
	if !s.cfg.placeWrites() {
		return // the versions only release left claims, which placing makes
	}
	s.mu.Lock()
	for i := range b.ops {
		op := &b.ops[i]
		s.applied[op.id.pg] = max(s.applied[op.id.pg], op.version)
	}
	s.mu.Unlock()
}

// appliedVersion is the highest version applied to pg since open.
func (s *Store) appliedVersion(pg PG) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[pg]
}
