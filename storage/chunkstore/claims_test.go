package chunkstore

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveClaims is claims kept block by block and slot by slot.
type naiveClaims map[naiveSlot][]claim // claim.lo, hi, slot unused

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

// addRuns adds cl on every block of runs, in its run's slot.
func (n naiveClaims) addRuns(pg PG, name string, runs []slotRun, cl claim) {
	for _, r := range runs {
		for i := r.lo; i < r.hi; i++ {
			n.add(pg, name, i, r.slot, cl)
		}
	}
}

// randomRuns is 1-3 runs of up to 4 blocks below blocks, each in a random
// slot, adjacent or (with gaps) sometimes a block apart.
func randomRuns(rng *rand.Rand, blocks int64, gaps bool) []slotRun {
	var runs []slotRun
	lo := rng.Int64N(blocks)
	for r := rng.IntN(3) + 1; r > 0 && lo < blocks; r-- {
		hi := min(lo+rng.Int64N(4)+1, blocks)
		runs = append(runs, slotRun{lo: lo, hi: hi, slot: rng.IntN(2)})
		lo = hi
		if gaps {
			lo += rng.Int64N(2)
		}
	}
	return runs
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

func (n naiveClaims) touching(pg PG, name string, lo, hi int64) []uint64 {
	var idx []uint64
	for k, cls := range n {
		if k.pg == pg && k.name == name && lo <= k.block && k.block < hi {
			for _, cl := range cls {
				if cl.kind == claimLogged {
					idx = append(idx, cl.index)
				}
			}
		}
	}
	return idx
}

func sortedSet(idx []uint64) []uint64 {
	slices.Sort(idx)
	return slices.Compact(idx)
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
			switch op := rng.IntN(8); op {
			case 0, 1, 2: // a placement of 1-3 runs
				next[pg]++
				idx := next[pg]
				runs := randomRuns(rng, blocks, false)
				c.placed(pg, name, idx, runs)
				n.addRuns(pg, name, runs, claim{kind: claimLogged, index: idx})
			case 3: // an entry rewritten inline
				idx := rng.Uint64N(next[pg] + 1)
				c.released(pg, idx)
				n.drop(func(k naiveSlot, cl claim) bool { return k.pg == pg && cl.kind == claimLogged && cl.index == idx })
			case 4:
				from := rng.Uint64N(next[pg] + 2)
				c.truncated(pg, from)
				n.drop(func(k naiveSlot, cl claim) bool { return k.pg == pg && cl.kind == claimLogged && cl.index >= from })
			case 5:
				below := rng.Uint64N(next[pg] + 2)
				c.compacted(pg, below)
				n.drop(func(k naiveSlot, cl claim) bool { return k.pg == pg && cl.kind == claimLogged && cl.index < below })
			case 6: // blocks left their slots
				next[pg]++
				idx := next[pg]
				runs := randomRuns(rng, blocks, true)
				c.left(pg, name, idx, runs)
				n.addRuns(pg, name, runs, claim{kind: claimLeft, index: idx})
			case 7:
				through := rng.Uint64N(next[pg] + 1)
				c.checkpointed(pg, through)
				n.drop(func(k naiveSlot, cl claim) bool { return k.pg == pg && cl.kind == claimLeft && cl.index <= through })
			}
			for _, pg := range pgs {
				for _, name := range names {
					for i := int64(0); i < blocks; i++ {
						for s := 0; s < 2; s++ {
							if got, want := claimsFree(c.of(pg, name), i, s), n.free(pg, name, i, s); got != want {
								t.Fatalf("seed %d step %d: free(%v, %s, block %d, slot %d) = %v, want %v", seed, step, pg, name, i, s, got, want)
							}
						}
					}
					lo := rng.Int64N(blocks)
					hi := lo + rng.Int64N(blocks-lo+1)
					got, want := sortedSet(c.touching(pg, name, lo, hi)), sortedSet(n.touching(pg, name, lo, hi))
					if !slices.Equal(got, want) {
						t.Fatalf("seed %d step %d: touching(%v, %s, [%d, %d)) = %v, want %v", seed, step, pg, name, lo, hi, got, want)
					}
				}
			}
		}
		for _, pg := range pgs {
			c.compacted(pg, next[pg]+1)
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
	if !claimsFree(c.of(a, "x"), 2, 1) || claimsFree(c.of(b, "x"), 2, 1) {
		t.Fatal("dropPG did not forget exactly one PG")
	}
}
