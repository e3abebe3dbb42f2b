package chunkstore

// Reclaim (docs/design-big-writes.md, "Reclaim"): a block that large
// writes moved between slots leaves a copy in the slot it left. Once
// nothing needs that copy (its claim is released: the checkpoint that
// covers the move, the compaction of a placed entry, raft replacing it,
// a conversion) the copy is stale and its space is punched, so a block
// holds one copy on disk and in the page cache. A slot is punched only if,
// under the object's lock, it is not the block's current slot, no claim
// covers it and no batch in progress has placed data in it.
//
// What is not reclaimed: the stale slots of a store that stopped before
// its checkpoint released them (the list is not kept on disk). Each such
// block keeps at most one stale copy, until a large write moves it again.

// placeInFlight records a placement of a batch not yet committed: its slots
// hold data that no claim covers yet. The caller holds placeMu.
func (s *Store) placeInFlight(pl *placement) {
	if s.inflight == nil {
		s.inflight = map[*placement]struct{}{}
	}
	s.inflight[pl] = struct{}{}
}

// placeLanded forgets in-flight placements (their batch committed, and
// claims cover them, or it ended without committing them). If stale, their
// slots are handed to reclaim: the batch replaced or discarded them before
// its log record was written. The caller holds placeMu.
func (s *Store) placeLanded(pls []*placement, stale bool) {
	for _, pl := range pls {
		delete(s.inflight, pl)
		if stale {
			s.claims.stale(pl.pg, pl.rec.name, pl.runs)
		}
	}
}

// slotFree reports whether slot of block i of object name holds nothing
// the store needs besides, possibly, the block's current bytes: no claim
// and no in-flight placement covers it. The caller holds placeMu.
func (s *Store) slotFree(pg PG, name string, i int64, slot int) bool {
	if !s.claims.free(pg, name, i, slot) {
		return false
	}
	for pl := range s.inflight {
		if pl.pg != pg || pl.rec.name != name {
			continue
		}
		for _, r := range pl.runs {
			if r.slot == slot && r.lo <= i && i < r.hi {
				return false
			}
		}
	}
	return true
}

// reclaim punches the stale slots among gone (runs of released claims),
// object by object. Errors are not returned: a slot left unpunched only
// costs space, and the file system's errors show at the next sync.
func (s *Store) reclaim(gone []staleRun) {
	if len(gone) == 0 {
		return
	}
	type objKey struct {
		pg   PG
		name string
	}
	byObj := map[objKey][]slotRun{}
	var order []objKey
	for _, g := range gone {
		k := objKey{g.pg, g.name}
		if byObj[k] == nil {
			order = append(order, k)
		}
		byObj[k] = append(byObj[k], g.run)
	}
	for _, k := range order {
		s.reclaimObject(k.pg, k.name, byObj[k])
	}
}

// reclaimObject punches the stale blocks of runs in one object. Which
// blocks are stale is decided under placeMu and the object's lock; the
// punches run under the object's lock only, with the slots marked in
// flight meanwhile, so that no placement takes them. Punching under
// placeMu, as a checkpoint did before, stalled every placement of the
// store behind it: under a sequential write the OSD loops spent ~15 % of
// their time waiting there.
func (s *Store) reclaimObject(pg PG, name string, runs []slotRun) {
	id := newObjID(pg, name)
	lock := &s.locks[id.stripe()]
	s.placeMu.Lock() // before the object's lock, as everywhere
	lock.RLock()
	busy := s.staleSlots(id, runs)
	s.placeMu.Unlock()
	if busy == nil {
		lock.RUnlock()
		return
	}
	// The object's lock keeps out in-place writes (which may fill a
	// hole's slot 0) and flips while the slots are punched; the in-flight
	// mark keeps out new placements. placeMu is taken again only once the
	// object's lock is released.
	s.punchRuns(id, busy.runs)
	lock.RUnlock()
	s.placeMu.Lock()
	s.placeLanded([]*placement{busy}, false)
	s.placeMu.Unlock()
}

// staleSlots picks the blocks of runs whose slot is stale (not current, not
// claimed, not in flight) and marks them in flight, as a placement of its
// own (nil: none). The caller holds placeMu and the object's lock.
func (s *Store) staleSlots(id objID, runs []slotRun) *placement {
	m, found, err := s.cachedMeta(loc{op: "reclaim", pg: id.pg, object: id.name, block: -1})
	if err != nil || !found {
		return nil // deleted (its file with it), or unreadable: nothing to do here
	}
	var stale []slotRun
	for _, r := range runs {
		for i := r.lo; i < r.hi; i++ {
			if (m.has(i) && m.slot(i) == r.slot) || !s.slotFree(id.pg, id.name, i, r.slot) {
				continue
			}
			stale = appendRun(stale, i, r.slot)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	busy := &placement{pg: id.pg, rec: &placedRecord{name: id.name}, runs: stale}
	s.placeInFlight(busy)
	return busy
}

// punchRuns punches runs of id's file. The caller holds the object's lock.
func (s *Store) punchRuns(id objID, runs []slotRun) {
	of, err := s.files.get(id.rel(), false, false)
	if err != nil {
		return // no file: nothing stored
	}
	defer s.files.put(of)
	b := s.blockIO(id, of.f, loc{op: "reclaim", pg: id.pg, object: id.name, block: -1})
	for _, r := range runs {
		punch(of.f, b.dataOff(r.lo, r.slot), (r.hi-r.lo)*b.bs)
		s.stats.reclaimed.Add(r.hi - r.lo)
	}
}
