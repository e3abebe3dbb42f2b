package chunkstore

import (
	"os"
	"slices"
)

// Reclaim (docs/design-big-writes.md, "Reclaim"): a block that large
// writes moved between slots leaves a copy in the slot it left. Once
// nothing needs that copy (its claim is released: the checkpoint that
// covers the move, the compaction of a placed entry, raft replacing it,
// a conversion) the copy is stale and its space is punched, so a block
// holds one copy on disk and in the page cache. A slot is punched only if,
// under the object's lock, it is not the block's current slot, no claim
// covers it and no batch in progress has placed data in it.
//
// What a checkpoint does not reclaim: the stale slots of a store that
// stopped before its checkpoint released them, or that crashed with slots
// in its reserve or placements in flight (none of these lists is kept on
// disk). Each such block keeps at most one stale copy, until a large write
// moves it again or the sweep after the next open (sweep.go) finds it.
//
// The stale reserve (Config.StaleReserve). Punching a stale slot at once
// frees its space, but the block's next large write then lands in a hole:
// on ext4 a direct write into a hole allocates, under the inode's lock,
// and journals the new extent, which the next fdatasync has to commit.
// fio here: three serial 1 MiB direct writers with fdatasync every third
// write do 1.2-1.3 GB/s into fresh files and 2.0-2.5 GB/s over written
// blocks. So the most recently released slots are kept allocated, up to a
// byte budget, for later writes to overwrite; the oldest beyond it are
// punched. A reserved slot is punched only if it is still stale then: the
// same check under the same locks as at once, so a slot written again in
// the meantime is left alone (and its bytes counted until it leaves).

// placeInFlight records a placement of a batch not yet committed: its slots
// hold data that no claim covers yet. The caller holds placeMu.
func (s *Store) placeInFlight(pl *placement) {
	if s.inflight == nil {
		s.inflight = map[objKey][]*placement{}
	}
	k := objKey{pl.pg, pl.rec.name}
	s.inflight[k] = append(s.inflight[k], pl)
}

// placeLanded forgets in-flight placements (their batch committed, and
// claims cover them, or it ended without committing them). If stale, their
// slots are handed to reclaim: the batch replaced or discarded them before
// its log record was written. The caller holds placeMu.
func (s *Store) placeLanded(pls []*placement, stale bool) {
	for _, pl := range pls {
		k := objKey{pl.pg, pl.rec.name}
		if rest := slices.DeleteFunc(s.inflight[k], func(q *placement) bool { return q == pl }); len(rest) > 0 {
			s.inflight[k] = rest
		} else {
			delete(s.inflight, k)
		}
		if stale {
			s.claims.stale(pl.pg, pl.rec.name, pl.runs)
		}
	}
}

// slotUse is what holds an object's slots: its claims and its in-flight
// placements, looked up once for the checks of many blocks (a 1 MiB write
// checks 256). Valid while the caller holds placeMu.
type slotUse struct {
	claims   []claim
	inflight []*placement
}

// slotUse returns what holds the slots of id. The caller holds placeMu.
func (s *Store) slotUse(id objID) slotUse {
	return slotUse{claims: s.claims.of(id.pg, id.name), inflight: s.inflight[objKey{id.pg, id.name}]}
}

// free reports whether slot of block i holds nothing the store needs
// besides, possibly, the block's current bytes: no claim and no in-flight
// placement covers it.
func (u slotUse) free(i int64, slot int) bool {
	if !claimsFree(u.claims, i, slot) {
		return false
	}
	for _, pl := range u.inflight {
		for _, r := range pl.runs {
			if r.slot == slot && r.lo <= i && i < r.hi {
				return false
			}
		}
	}
	return true
}

// slotsFree reports whether the slots slotOf gives blocks [lo, hi) of id
// are all free (slotUse.free). The caller holds placeMu.
func (s *Store) slotsFree(id objID, lo, hi int64, slotOf func(i int64) int) bool {
	u := s.slotUse(id)
	for i := lo; i < hi; i++ {
		if !u.free(i, slotOf(i)) {
			return false
		}
	}
	return true
}

// staleReserve is the FIFO of released runs kept allocated (see above).
type staleReserve struct {
	runs  []staleRun // oldest first
	bytes int64      // their size; a run written again since still counts
}

// reclaim adds the blocks among gone (runs of released claims) whose slot
// is stale to the stale reserve, and punches the oldest runs beyond its
// budget. The caller holds ckptMu.
func (s *Store) reclaim(gone []staleRun) {
	budget := s.reserveBudget()
	if budget == 0 {
		out := append(s.reserve.runs, gone...)
		s.reserve = staleReserve{}
		s.punchStale(out)
		return
	}
	bs := int64(s.cfg.BlockSize)
	for _, o := range groupRuns(gone) {
		// Only stale blocks count against the budget: most released
		// claims are of a block's current slot.
		stale := s.staleNow(o.pg, o.name, o.runs)
		for _, r := range stale {
			s.reserve.runs = append(s.reserve.runs, staleRun{pg: o.pg, name: o.name, run: r})
			s.reserve.bytes += (r.hi - r.lo) * bs
		}
		s.dropStaleCache(o.pg, o.name, stale)
	}
	var out []staleRun
	n := 0
	for ; n < len(s.reserve.runs) && s.reserve.bytes > budget; n++ {
		g := &s.reserve.runs[n]
		if k := (s.reserve.bytes - budget + bs - 1) / bs; k < g.run.hi-g.run.lo {
			// Only part of the run is over budget: punch its head.
			head := *g
			head.run.hi = head.run.lo + k
			g.run.lo += k
			s.reserve.bytes -= k * bs
			out = append(out, head)
			break
		}
		s.reserve.bytes -= (g.run.hi - g.run.lo) * bs
		out = append(out, *g)
	}
	s.reserve.runs = slices.Delete(s.reserve.runs, 0, n)
	s.punchStale(out)
}

// reserveBudget is how many bytes of stale slots may stay allocated now.
func (s *Store) reserveBudget() int64 {
	if s.cfg.StaleReserve <= 0 {
		return 0
	}
	free, err := freeBytes(s.cfg.Dir)
	if err != nil {
		return 0
	}
	return min(s.cfg.StaleReserve, free/16)
}

// punchReserve punches every stale slot of the reserve (Close). The caller
// holds ckptMu.
func (s *Store) punchReserve() {
	out := s.reserve.runs
	s.reserve = staleReserve{}
	s.punchStale(out)
}

// punchStale punches the stale slots among gone, object by object. Errors
// are not returned: a slot left unpunched only costs space, and the file
// system's errors show at the next sync.
func (s *Store) punchStale(gone []staleRun) {
	for _, o := range groupRuns(gone) {
		s.reclaimObject(o.pg, o.name, o.runs)
	}
}

// objRuns is the runs of one object.
type objRuns struct {
	pg   PG
	name string
	runs []slotRun
}

// groupRuns groups runs by object, objects in the order they first appear.
func groupRuns(gone []staleRun) []objRuns {
	at := map[objKey]int{}
	var out []objRuns
	for _, g := range gone {
		k := objKey{g.pg, g.name}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, objRuns{pg: g.pg, name: g.name})
		}
		out[i].runs = append(out[i].runs, g.run)
	}
	return out
}

// staleNow returns the blocks of runs of object name whose slot is stale
// (not current, not claimed, not in flight) at the time of the call.
func (s *Store) staleNow(pg PG, name string, runs []slotRun) []slotRun {
	id := newObjID(pg, name)
	lock := &s.locks[id.stripe()]
	s.placeMu.Lock() // before the object's lock, as everywhere
	lock.RLock()
	stale := s.staleRuns(id, runs)
	lock.RUnlock()
	s.placeMu.Unlock()
	return stale
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
	stale := s.staleRuns(id, runs)
	if len(stale) == 0 {
		return nil
	}
	busy := &placement{pg: id.pg, rec: &placedRecord{name: id.name}, runs: stale}
	s.placeInFlight(busy)
	return busy
}

// staleRuns returns the blocks of runs whose slot is stale. The caller
// holds placeMu and the object's lock.
func (s *Store) staleRuns(id objID, runs []slotRun) []slotRun {
	m, found, err := s.cachedMeta(loc{op: "reclaim", pg: id.pg, object: id.name, block: -1})
	if err != nil || !found {
		return nil // deleted (its file with it), or unreadable: nothing to do here
	}
	var stale []slotRun
	u := s.slotUse(id)
	for _, r := range runs {
		for i := r.lo; i < r.hi; i++ {
			if (m.has(i) && m.slot(i) == r.slot) || !u.free(i, r.slot) {
				continue
			}
			stale = appendRun(stale, i, r.slot)
		}
	}
	return stale
}

// dropStaleCache drops the cached pages of reserved stale runs: their
// blocks stay allocated on disk, but their memory goes back to the kernel
// as a punch gave it back. Without it a sequential pass grew the page
// cache by the reserve: on this VM, where memory touched for the first
// time is slow, a first pass over 4 GiB fell from 251-285 MB/s to 181-217.
// Only clean pages are dropped (dropCache), so it needs no lock: a
// placement that took one of the slots meanwhile loses nothing.
func (s *Store) dropStaleCache(pg PG, name string, runs []slotRun) {
	s.eachRunRange(newObjID(pg, name), runs, func(f *os.File, off, n int64) { dropCache(f, off, n) })
}

// punchRuns punches runs of id's file. The caller holds the object's lock.
func (s *Store) punchRuns(id objID, runs []slotRun) {
	s.eachRunRange(id, runs, func(f *os.File, off, n int64) {
		punch(f, off, n)
		s.stats.reclaimed.Add(n / int64(s.cfg.BlockSize))
	})
}

// eachRunRange calls fn with the byte range of each run's data in id's
// file; nothing if the file does not exist.
func (s *Store) eachRunRange(id objID, runs []slotRun, fn func(f *os.File, off, n int64)) {
	if len(runs) == 0 {
		return
	}
	of, err := s.files.get(id.rel(), false, false)
	if err != nil {
		return // no file: nothing stored or cached
	}
	defer s.files.put(of)
	b := s.blockIO(id, of.f, loc{op: "reclaim", pg: id.pg, object: id.name, block: -1})
	for _, r := range runs {
		fn(of.f, b.dataOff(r.lo, r.slot), (r.hi-r.lo)*b.bs)
	}
}
