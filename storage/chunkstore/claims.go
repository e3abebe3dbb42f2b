package chunkstore

// Claims say which slots of which blocks a large write may not be placed in
// (docs/design-big-writes.md, "Claims"). They are pure bookkeeping: no
// files, no locks, no clock; the store calls them from its commit and
// checkpoint paths (not wired yet: step 2 of the design built them alone) and rebuilds them
// at open from the raft log's placements.
//
//   - pending (C1): a placed entry persisted but not applied holds both
//     slots of its blocks, so no second large write is placed there first;
//   - flipped (C2): the slot a block left when index was applied, until a
//     checkpoint covers index (a replay may still write it in place);
//   - logged (C3): the slot a placed entry wrote, while that entry is in
//     the raft log (Entries rebuilds it from there).

type claimKind uint8

const (
	claimPending claimKind = iota + 1
	claimFlipped
	claimLogged
)

// bothSlots is the slot of a pending claim.
const bothSlots = -1

// claim covers blocks [lo, hi) of one object, in one slot or both.
type claim struct {
	kind   claimKind
	lo, hi int64
	slot   int
	index  uint64 // the raft index that made it
}

// slotRun is blocks [lo, hi) written to one slot by a placement.
type slotRun struct {
	lo, hi int64
	slot   int
}

// claims holds the claims of every object, by PG and object name. The zero
// value is not usable: use newClaims.
type claims struct {
	pgs map[PG]map[string][]claim
}

func newClaims() *claims { return &claims{pgs: map[PG]map[string][]claim{}} }

func (c *claims) add(pg PG, name string, cl claim) {
	objs := c.pgs[pg]
	if objs == nil {
		objs = map[string][]claim{}
		c.pgs[pg] = objs
	}
	objs[name] = append(objs[name], cl)
}

// placed records that entry index placed runs of object name: the blocks
// the runs span are pending, and each run's slot is logged.
func (c *claims) placed(pg PG, name string, index uint64, runs []slotRun) {
	if len(runs) == 0 {
		return
	}
	lo, hi := runs[0].lo, runs[0].hi
	for _, r := range runs {
		lo, hi = min(lo, r.lo), max(hi, r.hi)
		c.add(pg, name, claim{kind: claimLogged, lo: r.lo, hi: r.hi, slot: r.slot, index: index})
	}
	c.add(pg, name, claim{kind: claimPending, lo: lo, hi: hi, slot: bothSlots, index: index})
}

// applied records that the placed entry index of object name was applied:
// its pending claim goes.
func (c *claims) applied(pg PG, name string, index uint64) {
	c.filterObj(pg, name, func(cl claim) bool { return cl.kind == claimPending && cl.index == index })
}

// left records that applying index moved blocks [lo, hi) of object name
// out of slot (to the other one, or to a hole).
func (c *claims) left(pg PG, name string, index uint64, lo, hi int64, slot int) {
	if lo < hi {
		c.add(pg, name, claim{kind: claimFlipped, lo: lo, hi: hi, slot: slot, index: index})
	}
}

// truncated records that raft replaced pg's entries from index on: their
// placements never happen.
func (c *claims) truncated(pg PG, from uint64) {
	c.filter(pg, func(_ string, cl claim) bool {
		return (cl.kind == claimPending || cl.kind == claimLogged) && cl.index >= from
	})
}

// checkpointed records that a checkpoint made pg's apply state through
// index durable.
func (c *claims) checkpointed(pg PG, through uint64) {
	c.filter(pg, func(_ string, cl claim) bool { return cl.kind == claimFlipped && cl.index <= through })
}

// compacted records that pg's log entries below index are deleted.
func (c *claims) compacted(pg PG, below uint64) {
	c.filter(pg, func(_ string, cl claim) bool { return cl.kind == claimLogged && cl.index < below })
}

// dropPG forgets every claim of pg (a snapshot replaced its state and log).
func (c *claims) dropPG(pg PG) { delete(c.pgs, pg) }

// free reports whether a large write may be placed in slot of block i.
func (c *claims) free(pg PG, name string, i int64, slot int) bool {
	for _, cl := range c.pgs[pg][name] {
		if cl.lo <= i && i < cl.hi && (cl.slot == bothSlots || cl.slot == slot) {
			return false
		}
	}
	return true
}

// filter deletes pg's claims for which drop is true. (Deleting map entries
// while ranging over the map is allowed in Go.)
func (c *claims) filter(pg PG, drop func(name string, cl claim) bool) {
	for name := range c.pgs[pg] {
		c.filterObj(pg, name, func(cl claim) bool { return drop(name, cl) })
	}
}

// filterObj deletes the claims of one object for which drop is true, and
// the object's and PG's entries once they hold none.
func (c *claims) filterObj(pg PG, name string, drop func(cl claim) bool) {
	objs := c.pgs[pg]
	cls, ok := objs[name]
	if !ok {
		return
	}
	keep := cls[:0]
	for _, cl := range cls {
		if !drop(cl) {
			keep = append(keep, cl)
		}
	}
	clear(cls[len(keep):])
	if len(keep) > 0 {
		objs[name] = keep
		return
	}
	delete(objs, name)
	if len(objs) == 0 {
		delete(c.pgs, pg)
	}
}
