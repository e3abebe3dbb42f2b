package chunkstore

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// Placing ahead: a follower writes a large write's data into its slots
// when the data arrives, on the connection's goroutine, instead of in the
// loop's next batch (Preplace). The loop's batch then only logs where the
// data went (Place.Pre), so one batch's WAL commit overlaps the next
// entries' slot writes.
//
// A preplacement is a placement in flight (reclaim.go) that no batch holds
// yet. The rules of placement.go hold for it:
//   - its slots are chosen and marked in flight under placeMu, from the
//     object's meta read under placeMu too, and never while a batch applies
//     operations to the object: from its planning until its left claims are
//     recorded (noteApplied) the meta and the claims disagree (a slot a
//     flip leaves is unclaimed until then, and the claims of converted or
//     replaced entries are released before the operations run);
//   - a batch that applies an operation that may change its blocks (a
//     write in place, a zeroing, a truncation, a delete, a creation that
//     empties the file) spoils it at planning, before that operation runs;
//     a spoiled preplacement is never logged;
//   - it is written before it is handed over; the batch that logs it
//     syncs it before its WAL commit, as its own placements, and logs it
//     only for the very entry it was made from (same bytes).

// Preplaced is a large write's data written ahead of the entry that logs
// it. Pass it to AppendPlaced (Place.Pre), which uses or releases it, or
// release it with Unplace.
type Preplaced struct {
	pl      *placement // index and record; entry and data are set at adoption
	of      *objFile
	data    []byte      // the data written, to recognise the entry's at adoption
	spoiled atomic.Bool // set under placeMu, before the spoiling batch applies
}

// prePlacing is the store's state for placing ahead, guarded by placeMu.
type prePlacing struct {
	live     map[*Preplaced]struct{} // not yet adopted or released
	applying map[objKey]int          // objects a committing batch applies operations to
	applied  *sync.Cond              // on placeMu: signalled when applying shrinks
	refused  map[string]int64        // why preplacements were refused or dropped (tests)
}

func newPrePlacing(mu *sync.Mutex) prePlacing {
	return prePlacing{live: map[*Preplaced]struct{}{}, applying: map[objKey]int{},
		applied: sync.NewCond(mu), refused: map[string]int64{}}
}

// objKey names an object of a PG.
type objKey struct {
	pg   PG
	name string
}

// Preplace writes the data of a large write (p, with p.Data and Entry
// ignored) that a later AppendPlaced of pg's entry at index should log:
// entry is that entry without its data, as AppendPlaced will be given it.
// It returns nil when it cannot: the store does not place, the data is not
// whole blocks, a slot is taken, the object is being changed, or any
// error (the batch then places or logs the entry as it would have). The
// slots are not synced: the commit of the batch that adopts it syncs them
// with its own, one fdatasync per file. (Syncing here, per append
// received, made more flushes and was no faster: 271-278 MB/s against
// 273-289 under a 1 MiB sequential write.)
func (s *Store) Preplace(pg PG, index uint64, entry []byte, p Place) *Preplaced {
	bs := int64(s.cfg.BlockSize)
	if !s.cfg.placeWrites() || p.Data == nil || p.Lo != len(entry) || p.Hi != p.Lo+len(p.Data) ||
		p.Offset%bs != 0 || int64(len(p.Data))%bs != 0 || checkRange(loc{object: p.Object}, p.Offset, int64(len(p.Data))) != nil {
		return nil
	}
	if s.enter() != nil {
		return nil
	}
	defer s.leave()
	l := loc{op: "place ahead", pg: pg, object: p.Object, block: -1}
	id := newObjID(pg, p.Object)
	// The sums do not depend on the slots: the record is made outside the
	// lock from the meta as it is now, and checked against it under the lock.
	m, found, err := s.lockedMeta(id, l)
	if err != nil || !found {
		// An object that does not exist yet is left to the batch: data
		// placed ahead and then not logged would be stale slots of a file
		// without meta, which neither reclaim nor the sweep can find (only
		// the next Open would remove it: orphans.go).
		return nil
	}
	slotOf := func(i int64) int { return 1 - m.slot(i) }
	if !s.slotsLookFree(id, p.Offset/bs, (p.Offset+int64(len(p.Data)))/bs, slotOf) {
		// Checked again at registration; this only saves the checksums
		// of a write that cannot be placed (an object written again
		// before the checkpoint that frees the slot its last write left).
		s.notePre("slot looks taken")
		return nil
	}
	rec, err := s.blockIO(id, nil, l).placeData(entry, p.Lo, p.Data, p.Offset, slotOf)
	if err != nil {
		return nil
	}
	pp := &Preplaced{pl: &placement{pg: pg, index: index, rec: rec, runs: rec.slotRuns(bs)}, data: p.Data}
	if why := s.preRegister(pp, id, l); why != "" {
		s.notePre(why)
		return nil
	}
	if err := s.writeAhead(pp, id, p, l); err != nil {
		s.log.Debug("chunkstore: a write placed ahead failed; the batch places it", zap.Stringer("pg", pg), zap.Uint64("index", index), zap.Error(err))
		s.Unplace(pp)
		return nil
	}
	return pp
}

// testHookWriteAhead, when set (tests), runs as a write placed ahead
// starts.
var testHookWriteAhead func()

// testHookPreWait, when set (tests), runs (under placeMu) each time a
// preplacement waits for a batch applying to its object.
var testHookPreWait func()

// errSpoiled: a batch spoiled a preplacement before its data was written.
var errSpoiled = errors.New("spoiled before written")

// writeAhead opens the object's file and writes pp's slots, under the
// object's lock (shared): a batch applies its operations to the object
// under the same lock (exclusive), so either they wait for the write to
// end, or they ran first and spoiled pp, which the write then sees.
// Without the lock a spoiled write could land after an operation that made
// its slot current (a zeroed block refilled in place goes to slot 0), or
// in the file of an object deleted and created again.
func (s *Store) writeAhead(pp *Preplaced, id objID, p Place, l loc) error {
	lock := &s.locks[id.stripe()]
	lock.RLock()
	defer lock.RUnlock()
	if pp.spoiled.Load() {
		return errSpoiled
	}
	if testHookWriteAhead != nil {
		testHookWriteAhead()
	}
	of, bio, err := s.placeIO(id, p, l)
	if err != nil {
		return err
	}
	pp.of = of // put by Unplace or by the batch that adopts pp
	return s.writePlaced(bio, pp.pl.rec, p.Data)
}

// lockedMeta reads id's meta under its lock.
func (s *Store) lockedMeta(id objID, l loc) (objMeta, bool, error) {
	s.locks[id.stripe()].RLock()
	defer s.locks[id.stripe()].RUnlock()
	return s.cachedMeta(l)
}

// preRegister marks pp's slots in flight if the object's meta (read again,
// now that no batch applies to the object) still gives the slots pp's
// record chose and they are free. It returns why not, or "".
func (s *Store) preRegister(pp *Preplaced, id objID, l loc) string {
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	pre := &s.pre
	k := objKey{id.pg, id.name}
	for pre.applying[k] > 0 {
		if testHookPreWait != nil {
			testHookPreWait()
		}
		pre.applied.Wait()
	}
	m, found, err := s.lockedMeta(id, l)
	if err != nil || !found {
		return "no meta"
	}
	u := s.slotUse(id)
	for _, r := range pp.pl.runs {
		for i := r.lo; i < r.hi; i++ {
			if r.slot != 1-m.slot(i) {
				return "meta changed"
			}
			if !u.free(i, r.slot) {
				return "slot taken"
			}
		}
	}
	s.placeInFlight(pp.pl)
	pre.live[pp] = struct{}{}
	return ""
}

// slotsLookFree is slotsFree, taking placeMu.
func (s *Store) slotsLookFree(id objID, lo, hi int64, slotOf func(i int64) int) bool {
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	return s.slotsFree(id, lo, hi, slotOf)
}

// notePre counts a refusal (for tests and debugging).
func (s *Store) notePre(why string) {
	s.placeMu.Lock()
	s.pre.refused[why]++
	s.placeMu.Unlock()
}

// Unplace releases a preplacement that no batch will log: its slots are
// stale. It is a no-op for one already adopted or released, and for nil.
func (s *Store) Unplace(pp *Preplaced) {
	if pp == nil {
		return
	}
	s.placeMu.Lock()
	_, live := s.pre.live[pp]
	if live {
		delete(s.pre.live, pp)
		s.placeLanded([]*placement{pp.pl}, true)
	}
	s.placeMu.Unlock()
	if live && pp.of != nil {
		s.files.put(pp.of)
	}
}

// adopt takes p.Pre for the entry at index of pg, given as AppendPlaced
// has it, and returns its placement, or nil (released) when it was not
// made from that entry, was spoiled, or overlaps an earlier placement of
// the batch.
func (b *Batch) adopt(pg PG, index uint64, entry []byte, p Place) *placement {
	s, pp := b.s, p.Pre
	bs := int64(s.cfg.BlockSize)
	rec := pp.pl.rec
	same := pp.pl.pg == pg && pp.pl.index == index && rec.name == p.Object && rec.off == p.Offset &&
		rec.cut == p.Lo && p.Data != nil && len(p.Data) == len(pp.data) && bytes.Equal(rec.rest, entry) &&
		(&p.Data[0] == &pp.data[0] || bytes.Equal(p.Data, pp.data))
	same = same && !b.overlapsPlaced(pg, rec.name, rec.off/bs, rec.off/bs+rec.n)
	s.placeMu.Lock()
	_, live := s.pre.live[pp]
	ok := live && same && !pp.spoiled.Load()
	if ok {
		delete(s.pre.live, pp) // still in flight, now as the batch's
	}
	s.placeMu.Unlock()
	if !ok {
		s.Unplace(pp)
		return nil
	}
	pp.pl.entry, pp.pl.data = entry, p.Data
	b.placed = append(b.placed, pp.pl)
	b.syncFiles = append(b.syncFiles, pp.of) // synced with the batch's own
	s.stats.placed.Add(1)
	s.stats.ahead.Add(1)
	return pp.pl
}

// spoilPreplaced marks the live preplacements whose blocks one of the
// batch's operations may change, and the batch's objects as applying until
// doneApplying. The caller holds placeMu.
func (b *Batch) spoilPreplaced() {
	s := b.s
	p := &planner{b: b, created: map[int]bool{}}
	bs := int64(s.cfg.BlockSize)
	for i := range b.ops {
		op := &b.ops[i]
		k := objKey{op.id.pg, op.id.name}
		s.pre.applying[k]++
		for pp := range s.pre.live {
			rec := pp.pl.rec
			if pp.spoiled.Load() || pp.pl.pg != k.pg || rec.name != k.name {
				continue
			}
			lo, hi := s.opBlocks(op, p.createsObject(i))
			if rec.off/bs < hi && lo < rec.off/bs+rec.n {
				pp.spoiled.Store(true)
				s.pre.refused["spoiled"]++
			}
		}
	}
}

// doneApplying ends what spoilPreplaced started.
func (b *Batch) doneApplying() {
	s := b.s
	if len(b.ops) == 0 {
		return
	}
	s.placeMu.Lock()
	for i := range b.ops {
		k := objKey{b.ops[i].id.pg, b.ops[i].id.name}
		if s.pre.applying[k]--; s.pre.applying[k] <= 0 {
			delete(s.pre.applying, k)
		}
	}
	s.pre.applied.Broadcast()
	s.placeMu.Unlock()
}
