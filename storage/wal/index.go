package wal

import "fmt"

// loc is where one entry lives: its header's offset in a segment.
type loc struct {
	seg    uint64
	off    int64
	n      uint32
	marked bool
}

// pgLog is the in-memory index of one PG's log.
type pgLog struct {
	first uint64 // index of locs[0]; the next index when locs is empty
	locs  []loc
	hs    []byte
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
		p.first, p.locs = first, append([]loc(nil), locs...)
		return nil
	}
	p.locs = append(p.locs[:first-p.first], locs...)
	return nil
}

func (p *pgLog) compact(upTo uint64) {
	switch {
	case upTo <= p.first:
	case upTo > p.last():
		p.first, p.locs = upTo, nil
	default:
		p.locs = append([]loc(nil), p.locs[upTo-p.first:]...)
		p.first = upTo
	}
}
