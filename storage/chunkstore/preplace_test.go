package chunkstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The tests here keep pg1's log as the OSD does: every operation is an
// entry, applied as the version of its index (a placed entry's write
// applies by flipping only then).

// ahead is a write of 16 blocks at byte off of object name, placed ahead
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

// logAhead appends a's entry at index with its preplacement and applies
// it, in one batch.
func logAhead(t *testing.T, s *Store, index uint64, a ahead) {
	t.Helper()
	lo := a.op.headerLen()
	b := s.NewBatch()
	if err := b.AppendPlaced(pg1, index, [][]byte{a.entry[:lo:lo]},
		[]Place{{Entry: 0, Object: a.op.name, Offset: a.op.off, Lo: lo, Hi: len(a.entry), Data: a.entry[lo:], Direct: true, Pre: a.pp}}); err != nil {
		t.Fatal(err)
	}
	if err := a.op.addTo(b, pg1, index); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// logOps appends ops whole at indexes from first and applies them, in one
// batch.
func logOps(t *testing.T, s *Store, first uint64, ops ...testOp) {
	t.Helper()
	b := s.NewBatch()
	var ents [][]byte
	for _, op := range ops {
		ents = append(ents, op.encode())
	}
	if err := b.AppendEntries(pg1, first, ents); err != nil {
		t.Fatal(err)
	}
	for k, op := range ops {
		if err := op.addTo(b, pg1, first+uint64(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// baseObject creates object name with 16 blocks at index 1: data is placed
// ahead only into objects that exist.
func baseObject(t *testing.T, s *Store, name string) {
	t.Helper()
	logOps(t, s, 1, testOp{kind: opWrite, name: name, off: 0, data: pattern(1, 16<<12)})
}

// compact compacts pg1's log below upTo (all applied) and checkpoints, so
// that neither the log nor the slots applied writes left hold claims.
func compact(t *testing.T, s *Store, upTo uint64) {
	t.Helper()
	b := s.NewBatch()
	if err := b.SetApplyState(pg1, []byte{byte(upTo - 1)}); err != nil {
		t.Fatal(err)
	}
	if err := b.CompactLog(pg1, upTo); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	checkpoint(t, s)
}

// TestPreplaceAdopted: data placed ahead is logged by the batch that
// appends its entry, read back through the object and Entries, also after
// a restart, and its slots are not written twice.
func TestPreplaceAdopted(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	baseObject(t, s, "o")
	a := placeAhead(t, s, 2, "o", 0, 5)
	logAhead(t, s, 2, a)
	if s.stats.ahead.Load() != 1 || s.stats.placed.Load() != 1 || s.stats.flipped.Load() != 1 {
		t.Fatalf("adopted %d, placed %d, flipped %d; want 1, 1, 1 (refused: %v)", s.stats.ahead.Load(), s.stats.placed.Load(), s.stats.flipped.Load(), s.pre.refused)
	}
	if n := s.stats.direct.Load(); n != 1 && !s.noDirect.Load() {
		t.Fatalf("%d direct slot writes, want 1: the batch wrote the data again", n)
	}
	checkObject(t, s, pg1, "o", a.op.data, 2)
	if len(s.inflight) != 0 || len(s.pre.live) != 0 {
		t.Fatalf("%d placements still in flight, %d live preplacements after the commit", len(s.inflight), len(s.pre.live))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	got, err := s.Entries(pg1, 2, 3, 1<<30)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], a.entry) {
		t.Fatalf("Entries after reopen = %d entries, %v; want the entry rebuilt from its slots", len(got), err)
	}
	checkObject(t, s, pg1, "o", a.op.data, 2)
}

// TestPreplaceNotAdopted: a preplacement made for another entry (index,
// bytes) is released, and the entry is logged as without it.
func TestPreplaceNotAdopted(t *testing.T) {
	s := openStore(t, testConfig(t))
	baseObject(t, s, "o")
	a := placeAhead(t, s, 3, "o", 0, 5) // for index 3, logged at 2
	logAhead(t, s, 2, a)
	compact(t, s, 3)
	b := placeAhead(t, s, 3, "o", 0, 6)
	other := b
	other.op.data = pattern(7, 16<<12) // same place, other bytes
	other.entry = other.op.encode()
	logAhead(t, s, 3, other)
	if s.stats.ahead.Load() != 0 {
		t.Fatalf("adopted %d preplacements made for other entries", s.stats.ahead.Load())
	}
	checkObject(t, s, pg1, "o", other.op.data, 3)
	if len(s.inflight) != 0 || len(s.pre.live) != 0 {
		t.Fatalf("%d placements in flight, %d live preplacements: the refused ones were not released", len(s.inflight), len(s.pre.live))
	}
	// Released slots are free again, once the log no longer needs them.
	compact(t, s, 4)
	c := placeAhead(t, s, 4, "o", 0, 8)
	logAhead(t, s, 4, c)
	if s.stats.ahead.Load() != 1 {
		t.Fatalf("adopted %d, want 1", s.stats.ahead.Load())
	}
	checkObject(t, s, pg1, "o", c.op.data, 4)
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
		{"zero and refill", []testOp{{kind: opZero, name: "o", off: 0, n: 4096}, {kind: opWrite, name: "o", off: 100, data: pattern(5, 100)}}, true},
		{"truncate", []testOp{{kind: opTruncate, name: "o", off: 8 << 12}}, true},
		{"delete", []testOp{{kind: opDelete, name: "o"}}, true},
		{"delete and create", []testOp{{kind: opDelete, name: "o"}, {kind: opWrite, name: "o", off: 30 << 12, data: pattern(3, 4096)}}, true},
		{"write beside", []testOp{{kind: opWrite, name: "o", off: 20 << 12, data: pattern(4, 4096)}}, false},
		{"other object", []testOp{{kind: opDelete, name: "p"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, testConfig(t))
			logOps(t, s, 1, testOp{kind: opWrite, name: "o", off: 0, data: base}, testOp{kind: opWrite, name: "p", off: 0, data: base})
			next := uint64(3 + len(tc.ops))
			a := placeAhead(t, s, next, "o", 0, 9)
			logOps(t, s, 3, tc.ops...)
			logAhead(t, s, next, a)
			if spoiled := s.pre.refused["spoiled"] == 1; spoiled != tc.spoil || (s.stats.ahead.Load() == 1) == tc.spoil {
				t.Fatalf("spoiled %v, adopted %d; want spoiled %v", spoiled, s.stats.ahead.Load(), tc.spoil)
			}
			m := model{}
			testOp{kind: opWrite, name: "o", off: 0, data: base}.applyTo(m, pg1, 1)
			for k, op := range tc.ops {
				op.applyTo(m, pg1, 3+uint64(k))
			}
			a.op.applyTo(m, pg1, next)
			checkObject(t, s, pg1, "o", m[pg1]["o"].data, next)
		})
	}
}

// TestPreplaceNewObject: data is not placed ahead into an object that does
// not exist (if not logged it would be stale slots of a file without meta,
// which nothing reclaims), and no file is created for it.
func TestPreplaceNewObject(t *testing.T) {
	s := openStore(t, testConfig(t))
	op := testOp{kind: opWrite, name: "n", off: 0, data: pattern(3, 16<<12)}
	e, lo := op.encode(), op.headerLen()
	if pp := s.Preplace(pg1, 1, e[:lo:lo], Place{Object: "n", Lo: lo, Hi: len(e), Data: e[lo:]}); pp != nil {
		t.Fatal("placed ahead into an object that does not exist")
	}
	if _, err := os.Stat(filepath.Join(s.files.root, newObjID(pg1, "n").rel())); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the object's file: %v; want none", err)
	}
}

// TestUnplace: a released preplacement leaves nothing in flight, its
// slots are free for the next placement, and a second release is a no-op.
func TestUnplace(t *testing.T) {
	s := openStore(t, testConfig(t))
	baseObject(t, s, "o")
	a := placeAhead(t, s, 2, "o", 0, 5)
	lo := a.op.headerLen()
	if again := s.Preplace(pg1, 2, bytes.Clone(a.entry[:lo]), Place{Object: "o", Lo: lo, Hi: len(a.entry), Data: a.entry[lo:]}); again != nil {
		t.Fatal("a second preplacement took slots in flight")
	}
	s.Unplace(a.pp)
	s.Unplace(a.pp)
	s.Unplace(nil)
	if len(s.inflight) != 0 || len(s.pre.live) != 0 {
		t.Fatalf("%d placements in flight, %d live preplacements after Unplace", len(s.inflight), len(s.pre.live))
	}
	b := placeAhead(t, s, 2, "o", 0, 6)
	logAhead(t, s, 2, b)
	checkObject(t, s, pg1, "o", b.op.data, 2)
}

// TestPreplaceSpoiledWhileWriting: a batch that spoils a preplacement
// whose data is being written applies only once the write is over. Here
// the batch zeroes a block whose current copy is in slot 1 and refills it
// in place, which puts it in slot 0, the slot being written ahead: were
// the write to land after the batch, the block would read the placed data
// (with valid checksums).
func TestPreplaceSpoiledWhileWriting(t *testing.T) {
	s := openStore(t, testConfig(t))
	baseObject(t, s, "o")
	first := placeAhead(t, s, 2, "o", 0, 4) // the blocks move to slot 1
	logAhead(t, s, 2, first)
	compact(t, s, 3)
	started, resume := make(chan struct{}), make(chan struct{})
	testHookWriteAhead = func() { close(started); <-resume }
	defer func() { testHookWriteAhead = nil }()
	op := testOp{kind: opWrite, name: "o", off: 0, data: pattern(6, 16<<12)}
	e, lo := op.encode(), op.headerLen()
	got := make(chan *Preplaced)
	go func() { got <- s.Preplace(pg1, 5, e[:lo:lo], Place{Object: "o", Lo: lo, Hi: len(e), Data: e[lo:]}) }()
	<-started
	refill := []testOp{{kind: opZero, name: "o", off: 0, n: 4096}, {kind: opWrite, name: "o", off: 100, data: pattern(7, 100)}}
	done := make(chan struct{})
	go func() { logOps(t, s, 3, refill...); close(done) }()
	select {
	case <-done: // the batch did not wait (the check below fails)
	case <-time.After(100 * time.Millisecond): // waiting for the write, as it should
	}
	close(resume)
	<-done
	s.Unplace(<-got) // spoiled, or refused once spoiled
	m := model{}
	first.op.applyTo(m, pg1, 2)
	for k, op := range refill {
		op.applyTo(m, pg1, 3+uint64(k))
	}
	checkObject(t, s, pg1, "o", m[pg1]["o"].data, 4)
}

// TestPreplaceWaitsForApplying: while a batch is between applying a flip
// and recording the slot it left (a left claim), the meta says the block
// is in slot 1 and no claim guards slot 0, which a replay from the last
// checkpoint may still read. A write placed ahead then must wait for the
// batch (pre.applying) and find slot 0 taken; without the wait it wrote its
// data into slot 0.
func TestPreplaceWaitsForApplying(t *testing.T) {
	s := openStore(t, testConfig(t))
	baseObject(t, s, "o")
	compact(t, s, 2)
	first := placeAhead(t, s, 2, "o", 0, 4) // the blocks move to slot 1, leaving slot 0
	op := testOp{kind: opWrite, name: "o", off: 0, data: pattern(6, 16<<12)}
	e, lo := op.encode(), op.headerLen()
	got := make(chan *Preplaced, 1)
	waiting := make(chan struct{})
	testHookPreWait = func() { close(waiting); testHookPreWait = nil }
	var waited bool
	testHookApplied = func() {
		testHookApplied = nil
		go func() { got <- s.Preplace(pg1, 3, e[:lo:lo], Place{Object: "o", Lo: lo, Hi: len(e), Data: e[lo:]}) }()
		select {
		case pp := <-got: // registered while the batch applied (the checks below fail)
			got <- pp
		case <-waiting: // waiting for the batch, as it should
			waited = true
		}
	}
	defer func() { testHookApplied, testHookPreWait = nil, nil }()
	logAhead(t, s, 2, first)
	pp := <-got
	if pp != nil || !waited {
		s.Unplace(pp)
		t.Fatalf("a write placed ahead while the batch applied did not wait for it (placed: %v)", pp != nil)
	}
	if s.pre.refused["slot taken"] != 1 {
		t.Fatalf("refused %v; want \"slot taken\" once, after the wait", s.pre.refused)
	}
	checkObject(t, s, pg1, "o", first.op.data, 2)
}
