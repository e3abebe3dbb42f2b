package chunkstore

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"

	"go.uber.org/zap"
)

// Placed large writes, wired into Batch (docs/design-big-writes.md). On
// unless Config.LogLargeWrites: the OSD names its large writes
// (AppendPlaced). placement_plan.go plans a commit, placement_claims.go
// keeps the books, reclaim.go frees the copies left behind.
//
// The rules, each enforced here:
//   - a placed entry's blocks go into slots that are not current and hold
//     no logged placement (claims); all-zero blocks are not written;
//   - the slots are written and fdatasynced before the log record that
//     points at them is committed;
//   - before a batch commits, every logged placement whose blocks one of
//     the batch's in-place operations touches is rewritten inline in the
//     same WAL commit (conversion), read from its slots while they are
//     intact; only then may the operation overwrite them;
//   - claims are released only once the log no longer needs the slot:
//     after the WAL commit that replaced, rewrote or compacted the entry.
//
// So every placed record in the durable log has its slots intact, which
// is all that Entries and a replay need, unless the device damaged them
// later. Such an entry is not lost to raft: Entries reports it
// (ErrDamagedEntry), EntryHeads still gives its head, ApplyPlaced applies
// it by flipping (no data needed), and a conversion that meets it keeps a
// lost record (its head, no slots) instead of the whole entry.

// placeStats counts what the placement paths did since open.
type placeStats struct {
	placed    atomic.Int64 // entries whose data went to slots
	flipped   atomic.Int64 // placed entries applied by flipping slots
	converted atomic.Int64 // placed entries rewritten inline
	lost      atomic.Int64 // placed entries found damaged at conversion, kept as heads
	reclaimed atomic.Int64 // stale slot blocks punched (reclaim.go)
	direct    atomic.Int64 // placed entries written past the page cache (direct.go)
	ahead     atomic.Int64 // placed entries whose data was placed ahead (preplace.go)
}

// PlaceCounts counts what the placement paths did since the store opened.
type PlaceCounts struct {
	Placed    int64 // entries whose data went to slots
	Ahead     int64 // of which placed ahead of their batch (Preplace)
	Direct    int64 // slot writes past the page cache
	Flipped   int64 // placed entries applied by flipping slots
	Converted int64 // placed entries rewritten inline
	Lost      int64 // placed entries found damaged at conversion
	Reclaimed int64 // stale slot blocks punched
}

// PlaceCounts returns the placement counters.
func (s *Store) PlaceCounts() PlaceCounts {
	st := &s.stats
	return PlaceCounts{Placed: st.placed.Load(), Ahead: st.ahead.Load(), Direct: st.direct.Load(), Flipped: st.flipped.Load(),
		Converted: st.converted.Load(), Lost: st.lost.Load(), Reclaimed: st.reclaimed.Load()}
}

// Place names the data of a large write inside one raft entry passed to
// AppendPlaced.
type Place struct {
	Entry  int    // index of the entry in the ents given
	Object string // the object the entry writes
	Offset int64  // where the data goes in the object: a multiple of the block size
	Lo, Hi int    // the data is ents[Entry][Lo:Hi], a whole number of blocks
	// Data, when not nil, is the data itself, and ents[Entry] is the entry
	// without it: its bytes [0, Lo) then [Hi, end), with Hi = Lo +
	// len(Data). A caller that marshals entries then need not copy large
	// data into them only for the store to cut it out again; the store
	// joins the parts only for an entry that goes whole.
	Data []byte
	// Direct asks for the data to be written past the page cache
	// (O_DIRECT, direct.go): for a replica that does not serve reads, so
	// does not want the bytes cached. Where the file system cannot, it is
	// written through the page cache as without it.
	Direct bool
	// Pre, when not nil, is the data placed ahead (Store.Preplace) for
	// this entry: AppendPlaced logs it if it was made from this very
	// entry and nothing spoiled it, and releases it otherwise. It needs
	// Data.
	Pre *Preplaced
}

// placement is a placed entry: its record and, for one made by the batch
// that holds it, the original entry bytes (for a conversion before commit).
type placement struct {
	pg    PG
	index uint64
	rec   *placedRecord
	runs  []slotRun // rec.slotRuns: the blocks each slot holds
	entry []byte    // the caller's entry: whole, or without data (Place.Data)
	data  []byte    // Place.Data, or nil
}

// whole returns the entry pl was made from, joining its parts if it came
// in two (Place.Data); nil for a placement read back from the log.
func (pl *placement) whole() []byte {
	if pl.data == nil {
		return pl.entry
	}
	return Place{Lo: pl.rec.cut, Data: pl.data}.Join(pl.entry)
}

// size is the length of p's whole entry, given ents.
func (p Place) size(ents [][]byte) int {
	return len(ents[p.Entry]) + len(p.Data)
}

// Join returns p's whole entry from rest, the entry without its data (the
// entry as given with p.Data).
func (p Place) Join(rest []byte) []byte {
	return slices.Concat(rest[:p.Lo], p.Data, rest[p.Lo:])
}

// CheckPlaces checks places against the entries they name, as AppendPlaced
// does before it changes anything: one place per entry at most, a range
// inside the (whole) entry, the data's length for an entry in two parts,
// and a valid object name and range. Errors wrap ErrInvalid.
func CheckPlaces(pg PG, ents [][]byte, places []Place) error {
	seen := make(map[int]bool, len(places))
	for _, p := range places {
		if p.Entry < 0 || p.Entry >= len(ents) || seen[p.Entry] {
			return fmt.Errorf("chunkstore: append placed pg %s: %w: place for entry %d", pg, ErrInvalid, p.Entry)
		}
		seen[p.Entry] = true
		l := loc{op: "append placed", pg: pg, object: p.Object, block: -1}
		if p.Lo < 0 || p.Hi > p.size(ents) || p.Lo >= p.Hi || (p.Data != nil && p.Hi-p.Lo != len(p.Data)) {
			return l.wrap(fmt.Errorf("%w: place [%d, %d) outside its entry of %d bytes, or not its %d bytes of data", ErrInvalid, p.Lo, p.Hi, p.size(ents), len(p.Data)))
		}
		if err := checkRange(l, p.Offset, int64(p.Hi-p.Lo)); err != nil {
			return err
		}
	}
	return nil
}

// AppendPlaced is AppendEntries where the writes that places name may be
// stored once, in the object's file, with the log keeping only where they
// went. A place that cannot be honoured (the store does not place, the
// data is not whole blocks of the store's block size, or a slot it needs
// is taken) leaves its entry stored whole, as AppendEntries would. A
// place's Pre is logged or released. Errors:
// those of AppendEntries, and ErrInvalid for a place outside its entry or
// a bad object name or range.
func (b *Batch) AppendPlaced(pg PG, first uint64, ents [][]byte, places []Place) error {
	defer func() {
		for _, p := range places {
			b.s.Unplace(p.Pre) // a no-op for one adopted
		}
	}()
	if err := b.usable(); err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	bd, err := b.logRange(pg, first)
	if err != nil {
		return err
	}
	if err := CheckPlaces(pg, ents, places); err != nil {
		return err
	}
	if first <= bd[1] { // replacing entries placed earlier in this batch
		var gone []*placement
		b.placed = slices.DeleteFunc(b.placed, func(q *placement) bool {
			if q.pg == pg && q.index >= first {
				gone = append(gone, q)
				return true
			}
			return false
		})
		b.s.placeMu.Lock()
		b.s.placeLanded(gone, true)
		b.s.placeMu.Unlock()
	}
	var marks []bool
	out := ents
	if len(places) > 0 {
		out = slices.Clone(ents)
		marks = make([]bool, len(ents))
	}
	if b.s.cfg.placeWrites() {
		for _, p := range places {
			if p.Pre != nil {
				if pl := b.adopt(pg, first+uint64(p.Entry), ents[p.Entry], p); pl != nil {
					out[p.Entry] = pl.rec.encode()
					marks[p.Entry] = true
					continue
				}
			}
			pl, err := b.place(pg, first+uint64(p.Entry), ents[p.Entry], p)
			if err != nil {
				b.failed = err // the batch's placements no longer match its log records
				return err
			}
			if pl != nil {
				out[p.Entry] = pl.rec.encode()
				marks[p.Entry] = true
			}
		}
	}
	for _, p := range places {
		if p.Data != nil && !marks[p.Entry] { // goes whole
			out[p.Entry] = p.Join(ents[p.Entry])
		}
	}
	if !slices.Contains(marks, true) {
		marks = nil
	}
	if first <= bd[1] {
		if b.truncs == nil {
			b.truncs = map[PG]uint64{}
		}
		if t, ok := b.truncs[pg]; !ok || first < t {
			b.truncs[pg] = first
		}
	}
	b.logs[pg] = [2]uint64{bd[0], first + uint64(len(ents)) - 1}
	if marks != nil {
		b.wal.AppendMarked(walPG(pg), first, out, marks)
	} else {
		b.wal.Append(walPG(pg), first, out)
	}
	return nil
}

// logRange checks that entries from first continue pg's log as the batch
// has it so far, and returns that log's first and last index.
func (b *Batch) logRange(pg PG, first uint64) ([2]uint64, error) {
	if first == 0 {
		return [2]uint64{}, fmt.Errorf("chunkstore: append entries pg %s: %w: index 0", pg, ErrInvalid)
	}
	bd, ok := b.logs[pg]
	if !ok {
		_, bd[0], bd[1] = b.s.wal.State(walPG(pg)) // last is first-1 when empty
	}
	if first > bd[1]+1 || first < bd[0] {
		return bd, fmt.Errorf("chunkstore: append entries pg %s: %w: first %d outside [%d, %d]", pg, ErrInvalid, first, bd[0], bd[1]+1)
	}
	if b.logs == nil {
		b.logs = map[PG][2]uint64{}
	}
	return bd, nil
}

// place writes the data of one placed write into its slots (not synced:
// Commit does that before the WAL) and returns the placement, or nil when
// a block's slot is claimed or an earlier place of this batch has some of
// the same blocks (the entry then goes whole).
func (b *Batch) place(pg PG, index uint64, entry []byte, p Place) (*placement, error) {
	s := b.s
	l := loc{op: "append placed", pg: pg, object: p.Object, block: -1}
	id := newObjID(pg, p.Object)
	bs := int64(s.cfg.BlockSize)
	if p.Offset%bs != 0 || int64(p.Hi-p.Lo)%bs != 0 {
		return nil, nil // not whole blocks of this store: stored whole
	}
	lo, hi := p.Offset/bs, (p.Offset+int64(p.Hi-p.Lo))/bs
	if b.overlapsPlaced(pg, p.Object, lo, hi) {
		return nil, nil // its slots are not claimed yet (notePlacements)
	}
	s.locks[id.stripe()].RLock()
	m, _, err := s.cachedMeta(l)
	s.locks[id.stripe()].RUnlock()
	if err != nil {
		return nil, err
	}
	slotOf := func(i int64) int { return 1 - m.slot(i) }
	of, bio, err := s.placeIO(id, p, l)
	if err != nil {
		return nil, err
	}
	var rec *placedRecord
	data := p.Data
	if data != nil {
		// entry is the caller's until Commit; the record outlives it.
		rec, err = bio.placeData(bytes.Clone(entry), p.Lo, data, p.Offset, slotOf)
	} else {
		rec, data, err = bio.placeEntry(entry, p.Lo, p.Hi, p.Offset, slotOf)
	}
	if err != nil {
		s.files.put(of)
		return nil, err
	}
	pl := &placement{pg: pg, index: index, rec: rec, runs: rec.slotRuns(bs), entry: entry, data: p.Data}
	// Check the slots and mark them in flight in one step, so that reclaim
	// (reclaim.go) never punches what is about to be written.
	s.placeMu.Lock()
	free := s.slotsFree(newObjID(pg, p.Object), lo, hi, slotOf)
	if free {
		s.placeInFlight(pl)
	}
	s.placeMu.Unlock()
	if !free {
		s.files.put(of)
		return nil, nil
	}
	b.placed = append(b.placed, pl) // in flight: release forgets it whatever happens next
	if err := s.writePlaced(bio, rec, data); err != nil {
		s.files.put(of)
		return nil, err
	}
	b.syncFiles = append(b.syncFiles, of) // put after the sync at Commit
	s.stats.placed.Add(1)
	return pl, nil
}

// overlapsPlaced reports whether a placement made earlier in the batch has
// some of blocks [lo, hi) of object name.
func (b *Batch) overlapsPlaced(pg PG, name string, lo, hi int64) bool {
	bs := int64(b.s.cfg.BlockSize)
	for _, q := range b.placed {
		if q.pg == pg && q.rec.name == name && q.rec.off/bs < hi && lo < q.rec.off/bs+q.rec.n {
			return true
		}
	}
	return false
}

// placeIO opens the file of a placement's object (creating it) and the
// blockIO that writes its slots: past the page cache when p asks for it
// and the file system allows it. The caller puts the file back.
func (s *Store) placeIO(id objID, p Place, l loc) (*objFile, *blockIO, error) {
	of, err := s.files.get(id.rel(), true, false)
	if err != nil {
		return nil, nil, l.wrap(err)
	}
	bio := s.blockIO(id, of.f, l)
	if p.Direct && !s.noDirect.Load() {
		if bio.direct, err = s.files.directOf(of); errors.Is(err, syscall.EINVAL) {
			s.refuseDirect(err)
		} else if err != nil {
			s.log.Warn("chunkstore: cannot open an object file for direct writes; this write goes through the page cache",
				zap.String("object", p.Object), zap.Error(err))
		}
		bio.bufs = s.directBufs
	}
	return of, bio, nil
}

// writePlaced writes rec's slots (not synced) and marks the file dirty.
func (s *Store) writePlaced(bio *blockIO, rec *placedRecord, data []byte) error {
	err := rec.writeSlots(bio, data)
	if bio.direct != nil && errors.Is(err, syscall.EINVAL) {
		// The file system opened O_DIRECT but refuses these writes (an
		// alignment it needs that whole blocks do not give): the slots
		// are rewritten through the page cache.
		s.refuseDirect(err)
		bio.direct = nil
		err = rec.writeSlots(bio, data)
	}
	if err != nil {
		return err
	}
	s.files.markDirty(bio.id.rel())
	if bio.direct != nil {
		s.stats.direct.Add(1)
	}
	return nil
}

// syncPlaced makes the slots this batch's placements wrote durable, with
// the directory entries of their files where those may not be (created
// since a placement last synced their directory), before the WAL points at
// them.
func (b *Batch) syncPlaced() error {
	dirs, synced := map[string]bool{}, map[string]bool{}
	for _, of := range b.syncFiles {
		if synced[of.rel] {
			continue // several placements in one file
		}
		synced[of.rel] = true
		if err := fdatasync(of.f); err != nil {
			return fmt.Errorf("chunkstore: sync placed blocks of %s: %w", of.rel, err)
		}
		dirs[filepath.Dir(of.rel)] = true
	}
	if len(dirs) == 0 {
		return nil
	}
	dirs["."] = true
	need := b.s.files.unsyncedDirs(slices.Collect(maps.Keys(dirs)))
	for _, d := range slices.Sorted(maps.Keys(need)) {
		if err := syncDir(filepath.Join(b.s.files.root, d)); err != nil {
			return fmt.Errorf("chunkstore: sync placed blocks: %w", err)
		}
	}
	b.s.files.dirsSynced(need)
	return nil
}
