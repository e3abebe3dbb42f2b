package chunkstore

import (
	"bytes"
	"testing"
)

// ahead is a write of 16 blocks at block off of object name, placed ahead
// for the entry at index of pg1.
type ahead struct {
	op    testOp
	entry []byte // the whole entry
	pp    *Preplaced
}

func placeAhead(t *testing.T, s *Store, index uint64, name string, off int64, seed byte) ahead {
	t.Helper()
	op := testOp{kind: opWrite, name: name, off: off, data: pattern(seed, 16<<12)}
	e := op.encode()
	lo := op.headerLen()
	pp := s.Preplace(pg1, index, bytes.Clone(e[:lo]), Place{Object: name, Offset: off, Lo: lo, Hi: len(e), Data: e[lo:], Direct: true})
	if pp == nil {
		t.Fatalf("Preplace(%s at %d) refused: %v", name, off, s.pre.refused)
	}
	return ahead{op: op, entry: e, pp: pp}
}

// logAhead appends a's entry at index with its preplacement and applies it
// as version, in one batch.
func logAhead(t *testing.T, s *Store, index, version uint64, a ahead) {
	t.Helper()
	lo := a.op.headerLen()
	b := s.NewBatch()
	if err := b.AppendPlaced(pg1, index, [][]byte{a.entry[:lo:lo]},
		[]Place{{Entry: 0, Object: a.op.name, Offset: a.op.off, Lo: lo, Hi: len(a.entry), Data: a.entry[lo:], Direct: true, Pre: a.pp}}); err != nil {
		t.Fatal(err)
	}
	if err := a.op.addTo(b, pg1, version); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// checkpoint releases the claims on the slots applied writes left.
func checkpoint(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
}

// commitOps applies ops as versions from first, without log entries.
func commitOps(t *testing.T, s *Store, first uint64, ops ...testOp) {
	t.Helper()
	b := s.NewBatch()
	for k, op := range ops {
		if err := op.addTo(b, pg1, first+uint64(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestPreplaceAdopted: data placed ahead is logged by the batch that
// appends its entry, read back through the object and Entries, also after
// a restart, and its slots are not written twice.
func TestPreplaceAdopted(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	a := placeAhead(t, s, 1, "o", 0, 5)
	logAhead(t, s, 1, 1, a)
	if s.stats.ahead.Load() != 1 || s.stats.placed.Load() != 1 || s.stats.flipped.Load() != 1 {
		t.Fatalf("adopted %d, placed %d, flipped %d; want 1, 1, 1 (refused: %v)", s.stats.ahead.Load(), s.stats.placed.Load(), s.stats.flipped.Load(), s.pre.refused)
	}
	if n := s.stats.direct.Load(); n != 1 && !s.noDirect.Load() {
		t.Fatalf("%d direct slot writes, want 1: the batch wrote the data again", n)
	}
	checkObject(t, s, pg1, "o", a.op.data, 1)
	if len(s.inflight) != 0 || len(s.pre.live) != 0 {
		t.Fatalf("%d placements still in flight, %d live preplacements after the commit", len(s.inflight), len(s.pre.live))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	got, err := s.Entries(pg1, 1, 2, 1<<30)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], a.entry) {
		t.Fatalf("Entries after reopen = %d entries, %v; want the entry rebuilt from its slots", len(got), err)
	}
	checkObject(t, s, pg1, "o", a.op.data, 1)
}

// TestPreplaceNotAdopted: a preplacement made for another entry (index,
// bytes) or one overlapping a placement made earlier in the batch is
// released, and the entry is logged as without it.
func TestPreplaceNotAdopted(t *testing.T) {
	s := openStore(t, testConfig(t))
	a := placeAhead(t, s, 2, "o", 0, 5) // for index 2, logged at 1
	logAhead(t, s, 1, 1, a)
	checkpoint(t, s)
	b2 := placeAhead(t, s, 2, "o", 0, 6)
	other := b2
	other.op.data = pattern(7, 16<<12) // same place, other bytes
	other.entry = other.op.encode()
	logAhead(t, s, 2, 2, other)
	if s.stats.ahead.Load() != 0 {
		t.Fatalf("adopted %d preplacements made for other entries", s.stats.ahead.Load())
	}
	checkObject(t, s, pg1, "o", other.op.data, 2)
	if len(s.inflight) != 0 || len(s.pre.live) != 0 {
		t.Fatalf("%d placements in flight, %d live preplacements: the refused ones were not released", len(s.inflight), len(s.pre.live))
	}
	// Released slots are free again, once the log no longer needs them.
	b := s.NewBatch()
	if err := b.SetApplyState(pg1, []byte{2}); err != nil {
		t.Fatal(err)
	}
	if err := b.CompactLog(pg1, 3); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	checkpoint(t, s)
	c := placeAhead(t, s, 3, "o", 0, 8)
	logAhead(t, s, 3, 3, c)
	if s.stats.ahead.Load() != 1 {
		t.Fatalf("adopted %d, want 1", s.stats.ahead.Load())
	}
	checkObject(t, s, pg1, "o", c.op.data, 3)
}

// TestPreplaceSpoiled: a committed operation that may change a
// preplacement's blocks (or empties its file) spoils it, and its entry is
// logged as without it; one that does not leaves it to be adopted.
func TestPreplaceSpoiled(t *testing.T) {
	base := pattern(1, 32<<12)
	for _, tc := range []struct {
		name  string
		ops   []testOp
		spoil bool
	}{
		{"write in place", []testOp{{kind: opWrite, name: "o", off: 4 << 12, data: pattern(2, 4096)}}, true},
		{"zero", []testOp{{kind: opZero, name: "o", off: 0, n: 4096}}, true},
		{"truncate", []testOp{{kind: opTruncate, name: "o", off: 8 << 12}}, true},
		{"delete", []testOp{{kind: opDelete, name: "o"}}, true},
		{"delete and create", []testOp{{kind: opDelete, name: "o"}, {kind: opWrite, name: "o", off: 30 << 12, data: pattern(3, 4096)}}, true},
		{"write beside", []testOp{{kind: opWrite, name: "o", off: 20 << 12, data: pattern(4, 4096)}}, false},
		{"other object", []testOp{{kind: opDelete, name: "p"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, testConfig(t))
			commitOps(t, s, 1, testOp{kind: opWrite, name: "o", off: 0, data: base}, testOp{kind: opWrite, name: "p", off: 0, data: base})
			a := placeAhead(t, s, 1, "o", 0, 9)
			commitOps(t, s, 3, tc.ops...)
			logAhead(t, s, 1, 10, a)
			if spoiled := s.pre.refused["spoiled"] == 1; spoiled != tc.spoil || (s.stats.ahead.Load() == 1) == tc.spoil {
				t.Fatalf("spoiled %v, adopted %d; want spoiled %v", spoiled, s.stats.ahead.Load(), tc.spoil)
			}
			// The model: base, the ops, then the write.
			m := model{}
			testOp{kind: opWrite, name: "o", off: 0, data: base}.applyTo(m, pg1, 1)
			for k, op := range tc.ops {
				op.applyTo(m, pg1, 3+uint64(k))
			}
			a.op.applyTo(m, pg1, 10)
			checkObject(t, s, pg1, "o", m[pg1]["o"].data, 10)
		})
	}
}

// TestPreplaceNewObject: data placed ahead into an object that does not
// exist yet is spoiled by a write that creates the object (and empties its
// file) first, and adopted otherwise.
func TestPreplaceNewObject(t *testing.T) {
	s := openStore(t, testConfig(t))
	a := placeAhead(t, s, 1, "n", 0, 3)
	logAhead(t, s, 1, 5, a)
	checkObject(t, s, pg1, "n", a.op.data, 5)
	b := placeAhead(t, s, 2, "m", 16<<12, 4)
	small := testOp{kind: opWrite, name: "m", off: 0, data: pattern(5, 4096)}
	commitOps(t, s, 6, small)
	logAhead(t, s, 2, 7, b)
	if s.stats.ahead.Load() != 1 || s.pre.refused["spoiled"] != 1 {
		t.Fatalf("adopted %d, spoiled %d; want 1, 1", s.stats.ahead.Load(), s.pre.refused["spoiled"])
	}
	m := model{}
	small.applyTo(m, pg1, 6)
	b.op.applyTo(m, pg1, 7)
	checkObject(t, s, pg1, "m", m[pg1]["m"].data, 7)
}

// TestUnplace: a released preplacement leaves nothing in flight, its
// slots are free for the next placement, and a second release is a no-op.
func TestUnplace(t *testing.T) {
	s := openStore(t, testConfig(t))
	a := placeAhead(t, s, 1, "o", 0, 5)
	if again := s.Preplace(pg1, 1, bytes.Clone(a.entry[:a.op.headerLen()]),
		Place{Object: "o", Lo: a.op.headerLen(), Hi: len(a.entry), Data: a.entry[a.op.headerLen():]}); again != nil {
		t.Fatal("a second preplacement took slots in flight")
	}
	s.Unplace(a.pp)
	s.Unplace(a.pp)
	s.Unplace(nil)
	if len(s.inflight) != 0 || len(s.pre.live) != 0 {
		t.Fatalf("%d placements in flight, %d live preplacements after Unplace", len(s.inflight), len(s.pre.live))
	}
	b := placeAhead(t, s, 1, "o", 0, 6)
	logAhead(t, s, 1, 1, b)
	checkObject(t, s, pg1, "o", b.op.data, 1)
}
