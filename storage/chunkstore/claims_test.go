package chunkstore

import (
	"math/rand/v2"
	"testing"
)

// naiveClaims is claims kept block by block and slot by slot.
type naiveClaims map[naiveSlot][]claim // claim.lo, hi unused

type naiveSlot struct {
	pg    PG
	name  string
	block int64
	slot  int
}

func (n naiveClaims) add(pg PG, name string, i int64, slot int, cl claim) {
	k := naiveSlot{pg, name, i, slot}
	n[k] = append(n[k], cl)
}

func (n naiveClaims) drop(pred func(k naiveSlot, cl claim) bool) {
	for k, cls := range n {
		var keep []claim
		for _, cl := range cls {
			if !pred(k, cl) {
				keep = append(keep, cl)
			}
		}
		if len(keep) == 0 {
			delete(n, k)
		} else {
			n[k] = keep
		}
	}
}

func (n naiveClaims) free(pg PG, name string, i int64, slot int) bool {
	return len(n[naiveSlot{pg, name, i, slot}]) == 0
}

// TestClaimsAgainstNaive drives claims and a block-by-block version with
// the same random events and compares every answer of free, then releases
// everything and checks that no empty entries are left behind.
func TestClaimsAgainstNaive(t *testing.T) {
	const blocks = 16
	pgs := []PG{{1, 0}, {1, 1}}
	names := []string{"a", "b"}
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		c, n := newClaims(), naiveClaims{}
		next := map[PG]uint64{}
		for step := 0; step < 300; step++ {
			pg, name := pgs[rng.IntN(2)], names[rng.IntN(2)]
			switch op := rng.IntN(7); op {
			case 0, 1: // a placement of 1-3 runs
				next[pg]++
				idx := next[pg]
				var runs []slotRun
				lo := rng.Int64N(blocks)
				for r := rng.IntN(3) + 1; r > 0 && lo < blocks; r-- {
					hi := min(lo+rng.Int64N(4)+1, blocks)
					runs = append(runs, slotRun{lo: lo, hi: hi, slot: rng.IntN(2)})
					lo = hi
				}
				c.placed(pg, name, idx, runs)
				for _, r := range runs {
					for i := r.lo; i < r.hi; i++ {
						n.add(pg, name, i, r.slot, claim{kind: claimLogged, index: idx})
					}
				}
				for i := runs[0].lo; i < runs[len(runs)-1].hi; i++ {
					for s := 0; s < 2; s++ {
						n.add(pg, name, i, s, claim{kind: claimPending, index: idx})
					}
				}
			case 2: // apply a random index (pending or not)
				idx := rng.Uint64N(next[pg] + 1)
				c.applied(pg, name, idx)
				n.drop(func(k naiveSlot, cl claim) bool {
					return k.pg == pg && k.name == name && cl.kind == claimPending && cl.index == idx
				})
			case 3: // a block range left a slot
				next[pg]++
				idx, lo := next[pg], rng.Int64N(blocks)
				hi, slot := min(lo+rng.Int64N(5), blocks), rng.IntN(2)
				c.left(pg, name, idx, lo, hi, slot)
				for i := lo; i < hi; i++ {
					n.add(pg, name, i, slot, claim{kind: claimFlipped, index: idx})
				}
			case 4:
				from := rng.Uint64N(next[pg] + 2)
				c.truncated(pg, from)
				n.drop(func(k naiveSlot, cl claim) bool {
					return k.pg == pg && (cl.kind == claimPending || cl.kind == claimLogged) && cl.index >= from
				})
			case 5:
				through := rng.Uint64N(next[pg] + 1)
				c.checkpointed(pg, through)
				n.drop(func(k naiveSlot, cl claim) bool {
					return k.pg == pg && cl.kind == claimFlipped && cl.index <= through
				})
			case 6:
				below := rng.Uint64N(next[pg] + 2)
				c.compacted(pg, below)
				n.drop(func(k naiveSlot, cl claim) bool {
					return k.pg == pg && cl.kind == claimLogged && cl.index < below
				})
			}
			for _, pg := range pgs {
				for _, name := range names {
					for i := int64(0); i < blocks; i++ {
						for s := 0; s < 2; s++ {
							if got, want := c.free(pg, name, i, s), n.free(pg, name, i, s); got != want {
								t.Fatalf("seed %d step %d: free(%v, %s, block %d, slot %d) = %v, want %v", seed, step, pg, name, i, s, got, want)
							}
						}
					}
				}
			}
		}
		for _, pg := range pgs {
			c.truncated(pg, 0)
			c.checkpointed(pg, next[pg])
		}
		if len(c.pgs) != 0 {
			t.Fatalf("seed %d: claims left after releasing everything: %v", seed, c.pgs)
		}
	}
}

// TestClaimsDropPG: a snapshot forgets one PG's claims and no other's.
func TestClaimsDropPG(t *testing.T) {
	c := newClaims()
	a, b := PG{1, 0}, PG{1, 1}
	c.placed(a, "x", 5, []slotRun{{0, 4, 1}})
	c.placed(b, "x", 5, []slotRun{{0, 4, 1}})
	c.dropPG(a)
	if !c.free(a, "x", 2, 0) || c.free(b, "x", 2, 0) {
		t.Fatal("dropPG did not forget exactly one PG")
	}
}
