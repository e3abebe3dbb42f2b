package chunkstore

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// The install tests' snapshot: index 9, so the log restarts at 10; the
// copy read "x" at a later index (12), as a fuzzy copy may.
const installFirst = 10

var installApply = []byte("apply state at 9")

// copyIn is an install's copy: objects written with the source's
// versions, in ordinary batches.
func copyIn(t *testing.T, s *Store, pg PG) {
	t.Helper()
	commit(t, s, func(b *Batch) error {
		if err := b.Write(pg, "x", 0, pattern(7, 5000), 12); err != nil {
			return err
		}
		if err := b.Write(pg, "y", 8192, pattern(8, 100), 4); err != nil {
			return err
		}
		return b.Truncate(pg, "y", 20000, 4)
	})
}

// checkInstalled checks what copyIn and EndInstall left in pg.
func checkInstalled(t *testing.T, s *Store, pg PG) {
	t.Helper()
	checkObject(t, s, pg, "x", pattern(7, 5000), 12)
	want := append(zeros(8192), pattern(8, 100)...)
	checkObject(t, s, pg, "y", append(want, zeros(20000-len(want))...), 4)
	for _, name := range []string{"a", "b", "c"} { // fillPG's, from before
		if _, err := s.Stat(pg, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("installed pg %s: Stat(%s) = %v, want ErrNotFound", pg, name, err)
		}
	}
	st, err := s.LoadRaft(pg)
	if err != nil || string(st.ApplyState) != string(installApply) || string(st.HardState) != "hs" ||
		st.FirstIndex != installFirst || st.LastIndex != installFirst-1 {
		t.Fatalf("installed pg %s: raft state %+v (%v); want the snapshot's apply state, the empty log [%d, %d] and the hard state kept",
			pg, st, err, installFirst, installFirst-1)
	}
	if marked(t, s, pg, raftInstall) {
		t.Fatalf("installed pg %s: the install marker is still set", pg)
	}
}

// checkEmptied checks that pg holds nothing but the hard state hs, as
// after BeginInstall or an install a crash cut short.
func checkEmptied(t *testing.T, s *Store, pg PG, hs string) {
	t.Helper()
	if st, err := s.LoadRaft(pg); err != nil || st.FirstIndex != 0 || st.ApplyState != nil || string(st.HardState) != hs {
		t.Fatalf("emptied pg %s: raft state %+v (%v), want the hard state %q alone", pg, st, err, hs)
	}
	if objs, err := s.List(pg, "", "", 100); err != nil || len(objs) != 0 {
		t.Fatalf("emptied pg %s lists %v (%v), want nothing", pg, objs, err)
	}
	for _, name := range []string{"a", "b", "c", "x", "y"} {
		if _, err := s.Stat(pg, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("emptied pg %s: Stat(%s) = %v, want ErrNotFound", pg, name, err)
		}
	}
	s.placeMu.Lock()
	held := len(s.placements[pg]) + len(s.claims.pgs[pg])
	s.placeMu.Unlock()
	if held != 0 {
		t.Fatalf("emptied pg %s: %d placements and claimed objects left", pg, held)
	}
}

// marked reports whether pg has the marker key sub.
func marked(t *testing.T, s *Store, pg PG, sub byte) bool {
	t.Helper()
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(raftKey(pg, sub))
		return err
	})
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestInstall: an install replaces everything a PG held with the copied
// objects, the snapshot's apply state and a log that restarts after it,
// durably at once; raft then appends from there. The other PGs are
// untouched.
func TestInstall(t *testing.T) {
	s := openStore(t, testConfig(t))
	pg, kept := PG{Pool: 1, Seq: 1}, PG{Pool: 1, Seq: 2}
	fillPG(t, s, pg)
	fillPG(t, s, kept)
	if err := s.BeginInstall(pg); err != nil {
		t.Fatal(err)
	}
	checkEmptied(t, s, pg, "hs")
	copyIn(t, s, pg)
	if err := s.EndInstall(pg, installApply, installFirst); err != nil {
		t.Fatal(err)
	}
	// No checkpoint since EndInstall (nor a flush of the metas written
	// behind, which ListPGs would do): a crash keeps the install whole.
	killStore(s)
	s = openStore(t, s.cfg)
	checkInstalled(t, s, pg)
	checkFilled(t, s, kept, true)
	if pgs, err := s.ListPGs(); err != nil || !slices.Contains(pgs, pg) {
		t.Fatalf("ListPGs = %v (%v), without the installed pg %s", pgs, err, pg)
	}

	// Raft goes on from the snapshot: the entry after it, then a
	// checkpoint that compacts below it.
	op := testOp{kind: opWrite, name: "x", off: 0, data: pattern(9, 100)}
	commit(t, s, func(b *Batch) error {
		if err := b.AppendEntries(pg, installFirst, [][]byte{op.encode()}); err != nil {
			return err
		}
		if err := op.addTo(b, pg, installFirst); err != nil {
			return err
		}
		if err := b.SetApplyState(pg, []byte("apply state at 10")); err != nil {
			return err
		}
		return b.CompactLog(pg, installFirst)
	})
	checkpoint(t, s)
	s = reopen(t, s)
	want := append(pattern(9, 100), pattern(7, 5000)[100:]...)
	checkObject(t, s, pg, "x", want, installFirst)
	if st, err := s.LoadRaft(pg); err != nil || st.FirstIndex != installFirst || st.LastIndex != installFirst || string(st.ApplyState) != "apply state at 10" {
		t.Fatalf("pg %s after its first entry: raft state %+v (%v)", pg, st, err)
	}
}

// TestInstallRefuses: EndInstall without an install under way, with a log
// restarting at 0, or over a log that holds entries, changes nothing.
func TestInstallRefuses(t *testing.T) {
	s := openStore(t, testConfig(t))
	pg := PG{Pool: 1, Seq: 1}
	fillPG(t, s, pg)
	if err := s.EndInstall(pg, installApply, installFirst); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EndInstall without BeginInstall: %v, want ErrInvalid", err)
	}
	checkFilled(t, s, pg, false)
	if err := s.BeginInstall(pg); err != nil {
		t.Fatal(err)
	}
	if err := s.EndInstall(pg, installApply, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EndInstall at index 0: %v, want ErrInvalid", err)
	}
	op := testOp{kind: opWrite, name: "x", off: 0, data: pattern(9, 100)}
	commit(t, s, func(b *Batch) error { return b.AppendEntries(pg, 1, [][]byte{op.encode()}) })
	if err := s.EndInstall(pg, installApply, installFirst); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EndInstall over a log with entries: %v, want ErrInvalid", err)
	}
	if !marked(t, s, pg, raftInstall) {
		t.Fatal("a refused EndInstall cleared the install marker")
	}
	// Abandoned: DropPG clears the marker with the rest.
	if err := s.DropPG(pg, 0); err != nil {
		t.Fatal(err)
	}
	checkGone(t, s, pg)
	if marked(t, s, pg, raftInstall) {
		t.Fatal("DropPG left the install marker")
	}
}

// TestInstallCrash: an install cut short at any step, in BeginInstall's
// drop or in EndInstall, leaves nothing of the PG but its hard state after
// the next Open (the replica then asks for the snapshot again); the other
// PGs are untouched.
func TestInstallCrash(t *testing.T) {
	errCrash := errors.New("crash")
	type stop struct {
		drop, install int // the step of DropPG's or the install's hook
	}
	var stops []stop
	for step := 1; step <= 5; step++ {
		if step <= 4 {
			stops = append(stops, stop{drop: step})
		}
		stops = append(stops, stop{install: step})
	}
	for _, at := range stops {
		t.Run(fmt.Sprintf("drop%d-install%d", at.drop, at.install), func(t *testing.T) {
			cfg := testConfig(t)
			s := openStore(t, cfg)
			pg, kept := PG{Pool: 1, Seq: 1}, PG{Pool: 1, Seq: 2}
			fillPG(t, s, pg)
			fillPG(t, s, kept)
			stopAt := func(want int) func(int) error {
				return func(step int) error {
					if step == want {
						return errCrash
					}
					return nil
				}
			}
			s.dropStop, s.installStop = stopAt(at.drop), stopAt(at.install)
			err := s.BeginInstall(pg)
			if err == nil {
				copyIn(t, s, pg)
				err = s.EndInstall(pg, installApply, installFirst)
			}
			if !errors.Is(err, errCrash) {
				t.Fatalf("install = %v, want the crash", err)
			}
			killStore(s)
			s, err = Open(cfg)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer s.Close()
			checkEmptied(t, s, pg, "hs")
			if marked(t, s, pg, raftInstall) || marked(t, s, pg, raftDrop) {
				t.Fatal("a marker outlived the reopen")
			}
			checkFilled(t, s, kept, true)
		})
	}
}

// TestInstallKeepsTheLatestHardState: a hard state raft sets during an
// install (a new term, a vote) is the one kept, by EndInstall and by an
// Open that finds the install cut short; the marker's older one is not
// brought back over it.
func TestInstallKeepsTheLatestHardState(t *testing.T) {
	for _, crash := range []bool{false, true} {
		cfg := testConfig(t)
		s := openStore(t, cfg)
		pg := PG{Pool: 1, Seq: 1}
		fillPG(t, s, pg)
		if err := s.BeginInstall(pg); err != nil {
			t.Fatal(err)
		}
		copyIn(t, s, pg)
		commit(t, s, func(b *Batch) error { return b.SetHardState(pg, []byte("hs2")) })
		if crash {
			killStore(s)
			s = openStore(t, cfg)
			checkEmptied(t, s, pg, "hs2")
			continue
		}
		if err := s.EndInstall(pg, installApply, installFirst); err != nil {
			t.Fatal(err)
		}
		s = reopen(t, s)
		if st, err := s.LoadRaft(pg); err != nil || string(st.HardState) != "hs2" {
			t.Fatalf("after the install: hard state %q (%v), want hs2", st.HardState, err)
		}
	}
}

// TestInstallAbort: AbortInstall empties a PG mid-install but for its hard
// state and clears the marker, so that what is appended next survives an
// Open; without an install under way it changes nothing.
func TestInstallAbort(t *testing.T) {
	s := openStore(t, testConfig(t))
	pg := PG{Pool: 1, Seq: 1}
	fillPG(t, s, pg)
	if err := s.AbortInstall(pg); err != nil {
		t.Fatal(err)
	}
	checkFilled(t, s, pg, false)
	if err := s.BeginInstall(pg); err != nil {
		t.Fatal(err)
	}
	copyIn(t, s, pg)
	if err := s.AbortInstall(pg); err != nil {
		t.Fatal(err)
	}
	checkEmptied(t, s, pg, "hs")
	if marked(t, s, pg, raftInstall) {
		t.Fatal("AbortInstall left the install marker")
	}
	op := testOp{kind: opWrite, name: "x", off: 0, data: pattern(9, 100)}
	commit(t, s, func(b *Batch) error { return b.AppendEntries(pg, 1, [][]byte{op.encode()}) })
	s = reopen(t, s)
	if st, err := s.LoadRaft(pg); err != nil || st.FirstIndex != 1 || st.LastIndex != 1 || string(st.HardState) != "hs" {
		t.Fatalf("after an abort, an append and a reopen: %+v (%v)", st, err)
	}
}
