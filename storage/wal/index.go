package wal

import "fmt"

// loc is where one entry lives: its header's offset in a segment.
type loc struct {
	seg    uint64
	off    int64
	n      uint32
	marked bool
	// pin is set (segments count from 1) when a rewrite record put the
	// entry here, maybe in a newer segment than the entries after it: the
	// segment of its original append record.
	pin uint64
}

func (lc loc) rewritten() bool { return lc.pin != 0 }

// keeps is the oldest segment a replay needs for this entry: its own, or
// for a rewritten one the segment of its append record, which is what
// places the index in the log when the log is read back.
func (lc loc) keeps() uint64 {
	if lc.rewritten() {
		return lc.pin
	}
	return lc.seg
}

// pgLog is the in-memory index of one PG's log.
type pgLog struct {
	first     uint64 // index of locs[0]; the next index when locs is empty
	locs      []loc
	hs        []byte
	rewritten int // locs that are rewritten()
}

// forget updates the rewritten count for locs leaving the index.
func (p *pgLog) forget(locs []loc) {
	for _, lc := range locs {
		if lc.rewritten() {
			p.rewritten--
		}
	}
}

func (p *pgLog) last() uint64 { return p.first + uint64(len(p.locs)) - 1 }

// append places entries starting at first, replacing any from first on.
// Live, a gap or an append below the first index is an error (raft never
// does either). In replay, records may describe a history whose start was
// in segments since deleted (all of it overwritten or compacted later): the
// index then restarts at first, and the later records, which are all
// present, rebuild the exact state.
func (p *pgLog) append(first uint64, locs []loc, replay bool) error {
	if first > p.last()+1 || first < p.first {
		if !replay {
			return fmt.Errorf("%w: append at %d outside [%d, %d]", ErrInvalid, first, p.first, p.last()+1)
		}
		p.first, p.locs, p.rewritten = first, append([]loc(nil), locs...), 0
		return nil
	}
	p.forget(p.locs[first-p.first:])
	p.locs = append(p.locs[:first-p.first], locs...)
	return nil
}

// rewrite replaces entry index, if the log holds it.
func (p *pgLog) rewrite(index uint64, lc loc) {
	if index < p.first || index > p.last() {
		return
	}
	old := p.locs[index-p.first]
	lc.pin = old.keeps()
	if !old.rewritten() {
		p.rewritten++
	}
	p.locs[index-p.first] = lc
}

// oldestSeg is the oldest segment a replay needs for p's entries (ok false
// if it has none). Entries are in segment order except rewritten ones, so
// the whole log is looked at only while it holds some.
func (p *pgLog) oldestSeg() (seg uint64, ok bool) {
	if len(p.locs) == 0 {
		return 0, false
	}
	seg = p.locs[0].keeps()
	if p.rewritten > 0 {
		for _, lc := range p.locs {
			seg = min(seg, lc.keeps())
		}
	}
	return seg, true
}

func (p *pgLog) compact(upTo uint64) {
	switch {
	case upTo <= p.first:
	case upTo > p.last():
		p.first, p.locs, p.rewritten = upTo, nil, 0
	default:
		p.forget(p.locs[:upTo-p.first])
		p.locs = append([]loc(nil), p.locs[upTo-p.first:]...)
		p.first = upTo
	}
}
