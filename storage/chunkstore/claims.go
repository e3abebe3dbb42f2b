package chunkstore

// Claims say which slots a large write may not be placed in
// (docs/design-big-writes.md, "Claims"). They are pure bookkeeping: no
// files, no locks, no clock; the store keeps them under placeMu.
//
//   - logged: a slot that holds the data of a placed entry still in the
//     raft log, since Entries rebuilds the entry from it. Released when the
//     entry leaves the log (compacted, or replaced by raft) or is rewritten
//     inline (conversion). Rebuilt at open from the log's placed records.
//   - left: a slot a block left when the entry at index was applied (it
//     moved to the other slot, or became a hole), until a checkpoint covers
//     index. A replay after a crash starts from the last checkpoint with
//     metas that may be ahead of it and can read the block from that slot:
//     it must still hold the block's old bytes, not a newer placement's.

type claimKind uint8

const (
	claimLogged claimKind = iota + 1
	claimLeft
)

// claim covers blocks [lo, hi) of one object in one slot, made by the
// entry at index.
type claim struct {
	kind   claimKind
	lo, hi int64
	slot   int
	index  uint64
}

// slotRun is blocks [lo, hi) written to one slot by a placement.
type slotRun struct {
	lo, hi int64
	slot   int
}

// claims holds the claims of every object, by PG and object name. The zero
// value is not usable: use newClaims.
type claims struct {
	pgs  map[PG]map[string][]claim
	gone []staleRun // slots of claims released since takeGone: maybe stale now
}

// staleRun is blocks [run.lo, run.hi) of object name in slot run.slot,
// whose claim was released: reclaim punches the blocks of it that are
// neither current nor claimed again (reclaim.go).
type staleRun struct {
	pg   PG
	name string
	run  slotRun
}

// stale hands runs of object name to reclaim without a claim to release
// (a placement whose batch never logged it).
func (c *claims) stale(pg PG, name string, runs []slotRun) {
	for _, r := range runs {
		c.gone = append(c.gone, staleRun{pg: pg, name: name, run: r})
	}
}

// takeGone returns the runs of the claims released since the last call.
func (c *claims) takeGone() []staleRun {
	g := c.gone
	c.gone = nil
	return g
}

func newClaims() *claims { return &claims{pgs: map[PG]map[string][]claim{}} }

// placed records that the entry at index wrote runs of object name.
func (c *claims) placed(pg PG, name string, index uint64, runs []slotRun) {
	if len(runs) == 0 {
		return
	}
	objs := c.pgs[pg]
	if objs == nil {
		objs = map[string][]claim{}
		c.pgs[pg] = objs
	}
	for _, r := range runs {
		objs[name] = append(objs[name], claim{kind: claimLogged, lo: r.lo, hi: r.hi, slot: r.slot, index: index})
	}
}

// left records that applying the entry at index moved runs of object name
// out of their slots.
func (c *claims) left(pg PG, name string, index uint64, runs []slotRun) {
	if len(runs) == 0 {
		return
	}
	objs := c.pgs[pg]
	if objs == nil {
		objs = map[string][]claim{}
		c.pgs[pg] = objs
	}
	for _, r := range runs {
		objs[name] = append(objs[name], claim{kind: claimLeft, lo: r.lo, hi: r.hi, slot: r.slot, index: index})
	}
}

// checkpointed records that a checkpoint made pg's applied state through
// index durable: the left claims up to it go.
func (c *claims) checkpointed(pg PG, through uint64) {
	c.filter(pg, func(cl claim) bool { return cl.kind == claimLeft && cl.index <= through })
}

// released forgets the claims of the entry at index of pg (rewritten inline).
func (c *claims) released(pg PG, index uint64) {
	c.filter(pg, func(cl claim) bool { return cl.kind == claimLogged && cl.index == index })
}

// truncated forgets the claims of pg's entries from index on (raft
// replaced them).
func (c *claims) truncated(pg PG, from uint64) {
	c.filter(pg, func(cl claim) bool { return cl.kind == claimLogged && cl.index >= from })
}

// compacted forgets the claims of pg's entries below index (deleted from
// the log).
func (c *claims) compacted(pg PG, below uint64) {
	c.filter(pg, func(cl claim) bool { return cl.kind == claimLogged && cl.index < below })
}

// dropPG forgets every claim of pg (its log is gone; its objects go with
// it, so nothing is left to reclaim).
func (c *claims) dropPG(pg PG) {
	delete(c.pgs, pg)
	keep := c.gone[:0]
	for _, r := range c.gone {
		if r.pg != pg {
			keep = append(keep, r)
		}
	}
	c.gone = keep
}

// of returns the claims of object name.
func (c *claims) of(pg PG, name string) []claim { return c.pgs[pg][name] }

// claimsFree reports whether none of cls covers slot of block i: whether
// a large write may be placed there, as far as claims go.
func claimsFree(cls []claim, i int64, slot int) bool {
	for _, cl := range cls {
		if cl.lo <= i && i < cl.hi && cl.slot == slot {
			return false
		}
	}
	return true
}

// touching returns the indexes of the entries with a logged claim on any
// slot of blocks [lo, hi) of object name (unordered, possibly repeated).
func (c *claims) touching(pg PG, name string, lo, hi int64) []uint64 {
	var idx []uint64
	if lo >= hi {
		return nil
	}
	for _, cl := range c.pgs[pg][name] {
		if cl.kind == claimLogged && cl.lo < hi && lo < cl.hi {
			idx = append(idx, cl.index)
		}
	}
	return idx
}

// filter deletes pg's claims for which drop is true, and the object's and
// PG's entries once they hold none. (Deleting map entries while ranging
// over the map is allowed in Go.)
func (c *claims) filter(pg PG, drop func(cl claim) bool) {
	objs := c.pgs[pg]
	for name, cls := range objs {
		keep := cls[:0]
		for _, cl := range cls {
			if !drop(cl) {
				keep = append(keep, cl)
			} else {
				c.stale(pg, name, []slotRun{{lo: cl.lo, hi: cl.hi, slot: cl.slot}})
			}
		}
		clear(cls[len(keep):])
		if len(keep) > 0 {
			objs[name] = keep
		} else {
			delete(objs, name)
		}
	}
	if len(objs) == 0 {
		delete(c.pgs, pg)
	}
}
