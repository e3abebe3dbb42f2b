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

// reclaimLocked punches the slots of the claims released so far that are
// stale (see above), batched per object. Errors are not returned: a slot
// left unpunched only costs space, and the file system's errors show at
// the next sync. The caller holds placeMu.
func (s *Store) reclaimLocked() {
	gone := s.claims.takeGone()
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

// reclaimObject punches the stale blocks of runs in one object.
func (s *Store) reclaimObject(pg PG, name string, runs []slotRun) {
	id := newObjID(pg, name)
	l := loc{op: "reclaim", pg: pg, object: name, block: -1}
	s.locks[id.stripe()].RLock()
	defer s.locks[id.stripe()].RUnlock()
	m, found, err := s.cachedMeta(l)
	if err != nil || !found {
		return // deleted (its file with it), or unreadable: nothing to do here
	}
	var punchRuns []slotRun
	for _, r := range runs {
		for i := r.lo; i < r.hi; i++ {
			if (m.has(i) && m.slot(i) == r.slot) || !s.slotFree(pg, name, i, r.slot) {
				continue
			}
			punchRuns = appendRun(punchRuns, i, r.slot)
		}
	}
	if len(punchRuns) == 0 {
		return
	}
	of, err := s.files.get(id.rel(), false, false)
	if err != nil {
		return // no file: nothing stored
	}
	defer s.files.put(of)
	b := s.blockIO(id, of.f, l)
	for _, r := range punchRuns {
		punch(of.f, b.dataOff(r.lo, r.slot), (r.hi-r.lo)*b.bs)
		s.stats.reclaimed.Add(r.hi - r.lo)
	}
}
