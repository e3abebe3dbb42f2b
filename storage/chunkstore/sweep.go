package chunkstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// The sweep (reclaim.go, "What is not reclaimed"): the stale reserve and
// the slots of placements in flight (written, never logged) live only in
// memory. After a crash their copies stay allocated, unknown to reclaim,
// until their blocks are written again: up to one stale copy per block,
// twice the data in the worst case. Sweep finds them once after open.
// Not found here: the file of an object whose meta never reached the disk
// (a crash while a batch created it by a placed write); Open removes those
// (orphans.go).

// SweepResult is what a sweep did, with what checkpoints did meanwhile.
type SweepResult struct {
	Objects  int   // objects listed
	Punched  int64 // stale blocks punched (beyond the reserve's budget), checkpoints' included
	Reserved int64 // bytes of stale slots in the reserve at the end, kept for reuse
}

// sweepPage is how many objects a sweep walks between two reclaims.
const sweepPage = 256

// Sweep walks the data of every object's two slots for blocks that are
// allocated on disk and hands them to reclaim, as a checkpoint hands it
// the slots of released claims: those stale then (not current, unclaimed,
// not in flight, checked under the object's lock) go into the stale
// reserve, newest up to its budget, and the rest are punched. Current
// slots are left alone by the same check, so a sweep is safe beside any
// other use of the store, a replay included. It stops early, without
// error, when ctx is done.
func (s *Store) Sweep(ctx context.Context) (res SweepResult, err error) {
	pgs, err := s.ListPGs()
	if err != nil {
		return res, err
	}
	punched0 := s.stats.reclaimed.Load()
	defer func() { // into the results returned
		res.Punched = s.stats.reclaimed.Load() - punched0
		s.ckptMu.Lock()
		res.Reserved = s.reserve.bytes
		s.ckptMu.Unlock()
	}()
	for _, pg := range pgs {
		for after := ""; ; {
			if ctx.Err() != nil {
				return res, nil
			}
			infos, err := s.List(pg, "", after, sweepPage)
			if err != nil {
				return res, err
			}
			if len(infos) == 0 {
				break
			}
			var found []staleRun
			for _, info := range infos {
				runs, err := s.allocatedSlots(pg, info.Name)
				if err != nil {
					return res, err
				}
				for _, r := range runs {
					found = append(found, staleRun{pg: pg, name: info.Name, run: r})
				}
			}
			res.Objects += len(infos)
			after = infos[len(infos)-1].Name
			s.ckptMu.Lock() // before enter, as Checkpoint and Close take them
			if err := s.enter(); err != nil {
				s.ckptMu.Unlock()
				return res, err
			}
			s.reclaim(s.notReserved(found))
			s.leave()
			s.ckptMu.Unlock()
			if len(infos) < sweepPage {
				break
			}
		}
	}
	return res, nil
}

// allocatedSlots returns the blocks of the object's slots that are
// allocated in its file, as runs.
func (s *Store) allocatedSlots(pg PG, name string) ([]slotRun, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	id := newObjID(pg, name)
	// A descriptor of its own: seeking moves the file offset.
	f, err := os.Open(filepath.Join(s.files.root, id.rel()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // deleted meanwhile, or never written
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := s.blockIO(id, nil, loc{})
	var runs []slotRun
	for slot := range 2 {
		base := b.dataOff(0, slot)
		rs, err := dataRanges(f, base, base+MaxObjectSize)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			runs = append(runs, slotRun{slot: slot, lo: (r[0] - base) / b.bs, hi: (r[1] - base + b.bs - 1) / b.bs})
		}
	}
	return runs, nil
}

// notReserved returns found without the blocks the reserve holds already
// (a checkpoint may have released them since open, or an earlier sweep
// found them), so that none counts twice against its budget. The caller
// holds ckptMu.
func (s *Store) notReserved(found []staleRun) []staleRun {
	swept := map[objKey]bool{}
	for _, g := range found {
		swept[objKey{g.pg, g.name}] = true
	}
	have := map[objKey][]slotRun{}
	for _, g := range s.reserve.runs {
		if k := (objKey{g.pg, g.name}); swept[k] {
			have[k] = append(have[k], g.run)
		}
	}
	var out []staleRun
	for _, g := range found {
		for _, r := range subtractRuns(g.run, have[objKey{g.pg, g.name}]) {
			out = append(out, staleRun{pg: g.pg, name: g.name, run: r})
		}
	}
	return out
}

// subtractRuns returns the blocks of r that no run of minus (same slot)
// covers, as runs.
func subtractRuns(r slotRun, minus []slotRun) []slotRun {
	out := []slotRun{r}
	for _, m := range minus {
		if m.slot != r.slot {
			continue
		}
		var next []slotRun
		for _, o := range out {
			if m.hi <= o.lo || o.hi <= m.lo {
				next = append(next, o)
				continue
			}
			if o.lo < m.lo {
				next = append(next, slotRun{lo: o.lo, hi: m.lo, slot: o.slot})
			}
			if m.hi < o.hi {
				next = append(next, slotRun{lo: m.hi, hi: o.hi, slot: o.slot})
			}
		}
		out = next
	}
	return out
}
