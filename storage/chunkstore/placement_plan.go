package chunkstore

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"

	"go.uber.org/zap"
)

// Planning a batch's commit when placements are in play
// (placement.go): which operations apply by flipping, and which logged
// placements must be rewritten inline (converted) first.

// opBlocks is the block range an in-place operation may write, punch or
// empty: all blocks for a delete and for an operation that creates the
// object (which empties its file).
func (s *Store) opBlocks(op *queuedOp, created bool) (lo, hi int64) {
	bs := int64(s.cfg.BlockSize)
	all := MaxObjectSize / bs
	switch {
	case op.kind == opDelete || created:
		return 0, all
	case op.kind == opTruncate:
		return op.off / bs, all
	}
	return op.off / bs, (op.off + op.n + bs - 1) / bs
}

// planPlacements decides, before the WAL commit, which placements the
// batch's operations apply by flipping (flips, by op position) and which
// logged placements must be rewritten inline first (conversions: the
// batch's operations touch their slots). It iterates to a fixed point: a
// converted placement applied in this batch is applied in place, and so
// touches in its turn. The caller holds placeMu.
func (b *Batch) planPlacements() (flips map[int]*placement, convert map[placeKey]*placement) {
	s := b.s
	if len(s.placements) == 0 && len(b.placed) == 0 {
		return nil, nil
	}
	p := planner{b: b, mine: map[placeKey]*placement{}, created: map[int]bool{}}
	for _, pl := range b.placed {
		p.mine[placeKey{pl.pg, pl.index}] = pl
	}
	convert = map[placeKey]*placement{}
	for changed := true; changed; {
		changed = false
		for i := range b.ops {
			if p.flipOf(i, convert) != nil {
				continue
			}
			for _, pl := range p.touching(i) {
				if k := (placeKey{pl.pg, pl.index}); convert[k] == nil {
					convert[k] = pl
					changed = true
				}
			}
		}
	}
	flips = map[int]*placement{}
	for i := range b.ops {
		if pl := p.flipOf(i, convert); pl != nil {
			flips[i] = pl
		}
	}
	return flips, convert
}

// flipOf is the placement op i applies by flipping, or nil: the op is the
// write a placement was made from, and that placement is not converted.
// An op without data (ApplyPlaced) flips even when its placement is
// converted: the log then holds the entry inline (or as a lost head), and
// the flip makes current the slots that applying it in place would have
// filled with the same bytes. A lost placement (rewriteInline) flips only
// such an op: one with its data applies in place, which repairs it.
func (p *planner) flipOf(i int, convert map[placeKey]*placement) *placement {
	op := &p.b.ops[i]
	pl := p.lookup(op.id.pg, op.version)
	if pl == nil || !p.b.isFlip(op, pl) {
		return nil
	}
	if !op.placedOnly && (pl.rec.lost || convert[placeKey{op.id.pg, op.version}] != nil) {
		return nil
	}
	return pl
}

// checkPlacedOnly refuses a batch with an op without data (ApplyPlaced)
// that does not apply as a flip: there is nothing to write in its place.
func (b *Batch) checkPlacedOnly(flips map[int]*placement) error {
	for i := range b.ops {
		if op := &b.ops[i]; op.placedOnly && flips[i] == nil {
			l := loc{op: "apply placed", pg: op.id.pg, object: op.id.name, block: -1}
			return l.corrupt(fmt.Sprintf("entry %d is not a placed write of %d bytes at %d in this store's log, and its data is not here to write", op.version, op.n, op.off), ErrDamagedEntry)
		}
	}
	return nil
}

// placeKey names a placement by PG and index.
type placeKey struct {
	pg    PG
	index uint64
}

// planner answers planPlacements' questions about one batch.
type planner struct {
	b       *Batch
	mine    map[placeKey]*placement // placements made by this batch
	created map[int]bool            // memo of createsObject
}

// lookup is the placement the entry at index of pg has once the batch
// commits, or nil.
func (p *planner) lookup(pg PG, index uint64) *placement {
	if pl := p.mine[placeKey{pg, index}]; pl != nil {
		return pl
	}
	if t, ok := p.b.truncs[pg]; ok && index >= t {
		return nil // replaced by this batch
	}
	return p.b.s.placements[pg][index]
}

// touching lists the placements (logged, or made by this batch) with a
// slot in the blocks op i may change.
func (p *planner) touching(i int) []*placement {
	b, s := p.b, p.b.s
	op := &b.ops[i]
	pg, name := op.id.pg, op.id.name
	mineHere := false
	for _, pl := range b.placed {
		mineHere = mineHere || (pl.pg == pg && pl.rec.name == name)
	}
	if len(s.claims.pgs[pg][name]) == 0 && !mineHere {
		return nil
	}
	lo, hi := s.opBlocks(op, p.createsObject(i))
	var out []*placement
	t, truncated := b.truncs[pg]
	for _, idx := range s.claims.touching(pg, name, lo, hi) {
		if truncated && idx >= t {
			continue // an old entry this batch replaced
		}
		if pl := s.placements[pg][idx]; pl != nil {
			out = append(out, pl)
		}
	}
	for _, pl := range b.placed {
		if pl.pg != pg || pl.rec.name != name {
			continue
		}
		for _, r := range pl.runs {
			if r.lo < hi && lo < r.hi {
				out = append(out, pl)
				break
			}
		}
	}
	return out
}

// createsObject reports whether op i may find its object missing and so
// create it (emptying the file): the object had no meta before the batch,
// or an earlier op of the batch deletes it.
func (p *planner) createsObject(i int) bool {
	if c, ok := p.created[i]; ok {
		return c
	}
	b, s := p.b, p.b.s
	op := &b.ops[i]
	created := false
	for j := range i {
		if o := &b.ops[j]; o.kind == opDelete && o.id == op.id {
			created = true
		}
	}
	if !created {
		l := loc{op: "plan", pg: op.id.pg, object: op.id.name, block: -1}
		s.locks[op.id.stripe()].RLock()
		_, found, err := s.cachedMeta(l)
		s.locks[op.id.stripe()].RUnlock()
		created = err != nil || !found
	}
	p.created[i] = created
	return created
}

// isFlip reports whether op is the application of placement pl: the write
// of the entry pl was made from.
func (b *Batch) isFlip(op *queuedOp, pl *placement) bool {
	bs := b.s.cfg.BlockSize
	return op.kind == opWrite && op.id.name == pl.rec.name && op.off == pl.rec.off && op.n == pl.rec.n*int64(bs)
}

// rewriteInline adds to the batch's WAL records the whole entry of every
// placement in convert, read back from its slots (or, for one made by this
// batch, taken from the caller), so that the operations may overwrite
// them. The caller holds placeMu.
func (b *Batch) rewriteInline(convert map[placeKey]*placement) error {
	for _, k := range slices.SortedFunc(maps.Keys(convert), func(a, c placeKey) int {
		return cmp.Or(cmp.Compare(a.pg.Pool, c.pg.Pool), cmp.Compare(a.pg.Seq, c.pg.Seq), cmp.Compare(a.index, c.index))
	}) {
		pl := convert[k]
		entry := pl.whole()
		if entry == nil {
			var err error
			entry, err = b.s.rebuildPlaced(pl.pg, pl.rec)
			if errors.Is(err, ErrDamagedEntry) {
				// The log cannot keep data it no longer has: it keeps
				// the entry's head, marked lost, and the operations
				// may overwrite the slots. Raft gets the head
				// (EntryHeads); the other replicas hold the data. Its
				// claims stay (notePlacements): a replay may flip it.
				b.s.log.Error("chunkstore: a placed raft entry's data is damaged; the log keeps only its head, the other replicas hold the data",
					zap.Stringer("pg", pl.pg), zap.Uint64("index", pl.index), zap.String("object", pl.rec.name), zap.Error(err))
				lost := *pl.rec
				lost.lost = true
				b.wal.Rewrite(walPG(pl.pg), pl.index, lost.encode(), true)
				b.lost = append(b.lost, &placement{pg: pl.pg, index: pl.index, rec: &lost, runs: pl.runs})
				b.s.stats.lost.Add(1)
				continue
			}
			if err != nil {
				return err
			}
		}
		b.wal.Rewrite(walPG(pl.pg), pl.index, entry, false)
		b.s.stats.converted.Add(1)
	}
	return nil
}

// rebuildPlaced returns the entry rec was made from, read from its slots.
func (s *Store) rebuildPlaced(pg PG, rec *placedRecord) ([]byte, error) {
	id := newObjID(pg, rec.name)
	l := loc{op: "rebuild placed entry", pg: pg, object: rec.name, block: -1}
	if len(rec.slotRuns(int64(s.cfg.BlockSize))) == 0 {
		return rec.rebuild(s.blockIO(id, nil, l)) // all zeros: nothing was written
	}
	s.locks[id.stripe()].RLock()
	defer s.locks[id.stripe()].RUnlock()
	of, err := s.files.get(id.rel(), false, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, l.corrupt("the object file of a placed entry is missing", fmt.Errorf("%w: %w", ErrDamagedEntry, err))
		}
		return nil, l.wrap(fmt.Errorf("open the object file of a placed entry: %w", err))
	}
	defer s.files.put(of)
	return rec.rebuild(s.blockIO(id, of.f, l))
}
