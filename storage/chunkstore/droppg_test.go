package chunkstore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// fillPG gives pg what a replica holds: a small write to "a" at index 1,
// applied and checkpointed; a large write to "b" at 2, placed and logged
// but not applied (its slots are claimed); a small write to "c" at 3,
// applied but not checkpointed (its meta is in the backlog); a hard state;
// an apply state and a compaction below 2 not yet checkpointed (pending).
func fillPG(t *testing.T, s *Store, pg PG) {
	t.Helper()
	a := testOp{kind: opWrite, name: "a", off: 0, data: pattern(byte(pg.Seq), 3<<10)}
	commit(t, s, func(b *Batch) error {
		if err := b.AppendEntries(pg, 1, [][]byte{a.encode()}); err != nil {
			return err
		}
		if err := b.SetHardState(pg, []byte("hs")); err != nil {
			return err
		}
		if err := a.addTo(b, pg, 1); err != nil {
			return err
		}
		return b.SetApplyState(pg, []byte{1})
	})
	checkpoint(t, s)
	big := testOp{kind: opWrite, name: "b", off: 0, data: pattern(byte(pg.Seq)+1, 16<<12)}
	e := big.encode()
	commit(t, s, func(b *Batch) error {
		return b.AppendPlaced(pg, 2, [][]byte{e}, []Place{{Entry: 0, Object: big.name, Offset: big.off, Lo: big.headerLen(), Hi: len(e)}})
	})
	c := testOp{kind: opWrite, name: "c", off: 100, data: pattern(byte(pg.Seq)+2, 5000)}
	commit(t, s, func(b *Batch) error {
		if err := b.AppendEntries(pg, 3, [][]byte{c.encode()}); err != nil {
			return err
		}
		return c.addTo(b, pg, 3)
	})
	pendPG(t, s, pg)
}

// pendPG commits an apply state and a compaction below 2 of pg, which the
// next checkpoint makes durable (another PG's fillPG takes one).
func pendPG(t *testing.T, s *Store, pg PG) {
	t.Helper()
	commit(t, s, func(b *Batch) error {
		if err := b.SetApplyState(pg, []byte{3}); err != nil {
			return err
		}
		return b.CompactLog(pg, 2)
	})
}

// checkFilled checks what fillPG left in pg (after the large write's
// entry was applied by nobody: "b" does not exist yet). After a crash
// "c" is gone until the OSD replays the log from the durable apply state
// (index 1), as its meta never reached the meta DB.
func checkFilled(t *testing.T, s *Store, pg PG, crashed bool) {
	t.Helper()
	checkObject(t, s, pg, "a", pattern(byte(pg.Seq), 3<<10), 1)
	if !crashed {
		checkObject(t, s, pg, "c", append(zeros(100), pattern(byte(pg.Seq)+2, 5000)...), 3)
	}
	st, err := s.LoadRaft(pg)
	if err != nil || st.FirstIndex < 1 || st.FirstIndex > 2 || st.LastIndex != 3 || string(st.HardState) != "hs" {
		t.Fatalf("pg %s: log [%d, %d], hard state %q (%v); want [1 or 2 (compacted), 3] and hs", pg, st.FirstIndex, st.LastIndex, st.HardState, err)
	}
	if _, err := s.Entries(pg, 2, 3, 1<<30); err != nil {
		t.Fatalf("pg %s: the placed entry: %v", pg, err)
	}
}

// checkGone checks that the store holds nothing of pg.
func checkGone(t *testing.T, s *Store, pg PG) {
	t.Helper()
	st, err := s.LoadRaft(pg)
	if err != nil || st.FirstIndex != 0 || st.LastIndex != 0 || st.HardState != nil || st.ApplyState != nil { // a Tomb stays
		t.Fatalf("dropped pg %s: raft state %+v (%v); want none", pg, st, err)
	}
	if objs, err := s.List(pg, "", "", 100); err != nil || len(objs) != 0 {
		t.Fatalf("dropped pg %s lists %v (%v)", pg, objs, err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if _, err := s.Stat(pg, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("dropped pg %s: Stat(%s) = %v, want ErrNotFound", pg, name, err)
		}
	}
	pgs, err := s.ListPGs()
	if err != nil || slices.Contains(pgs, pg) {
		t.Fatalf("ListPGs = %v (%v), with the dropped pg %s", pgs, err, pg)
	}
	if _, err := os.Stat(filepath.Join(s.files.root, pgDirName(pg))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dropped pg %s: its directory is still there (%v)", pg, err)
	}
	s.placeMu.Lock()
	held := len(s.placements[pg]) + len(s.claims.pgs[pg])
	s.placeMu.Unlock()
	if held != 0 {
		t.Fatalf("dropped pg %s: %d placements and claimed objects left", pg, held)
	}
}

// TestDropPG: a dropped PG is gone, also after a checkpoint and a
// restart, and the others are untouched; the PG can then be made anew
// from index 1.
func TestDropPG(t *testing.T) {
	s := openStore(t, testConfig(t))
	gone, kept := PG{Pool: 1, Seq: 1}, PG{Pool: 1, Seq: 2}
	fillPG(t, s, gone)
	fillPG(t, s, kept)
	pendPG(t, s, gone) // fillPG(kept) checkpointed gone's
	if err := s.DropPG(gone, 0); err != nil {
		t.Fatal(err)
	}
	checkGone(t, s, gone)
	checkFilled(t, s, kept, false)
	checkpoint(t, s)
	s = reopen(t, s)
	checkGone(t, s, gone)
	checkFilled(t, s, kept, false)
	if err := s.DropPG(PG{Pool: 9, Seq: 9}, 0); err != nil {
		t.Fatalf("dropping a pg the store does not hold: %v", err)
	}

	fillPG(t, s, gone)
	checkFilled(t, s, gone, false)
	s = reopen(t, s)
	checkFilled(t, s, gone, false)
	checkFilled(t, s, kept, false)
}

// TestDropPGTomb: a drop's tomb outlives the drop, a restart, a lower
// tomb and an install, and a PG with a tomb alone is no PG held.
func TestDropPGTomb(t *testing.T) {
	s := openStore(t, testConfig(t))
	pg := PG{Pool: 1, Seq: 1}
	tomb := func(want uint64) {
		t.Helper()
		if st, err := s.LoadRaft(pg); err != nil || st.Tomb != want {
			t.Fatalf("tomb %d (%v), want %d", st.Tomb, err, want)
		}
	}
	tomb(0)
	fillPG(t, s, pg)
	if err := s.DropPG(pg, 7<<20|3); err != nil {
		t.Fatal(err)
	}
	checkGone(t, s, pg)
	tomb(7<<20 | 3)
	s = reopen(t, s)
	checkGone(t, s, pg)
	tomb(7<<20 | 3)
	fillPG(t, s, pg)
	if err := s.DropPG(pg, 5); err != nil {
		t.Fatal(err)
	}
	tomb(7<<20 | 3)
	fillPG(t, s, pg)
	if err := s.BeginInstall(pg); err != nil {
		t.Fatal(err)
	}
	if err := s.AbortInstall(pg); err != nil {
		t.Fatal(err)
	}
	tomb(7<<20 | 3)
}

// TestDropPGBusy: a PG with data placed ahead (not yet logged) is not
// dropped, and nothing of it changes.
func TestDropPGBusy(t *testing.T) {
	s := openStore(t, testConfig(t))
	baseObject(t, s, "o")
	a := placeAhead(t, s, 2, "o", 0, 5)
	if err := s.DropPG(pg1, 0); !errors.Is(err, ErrBusy) {
		t.Fatalf("DropPG with a live preplacement: %v, want ErrBusy", err)
	}
	if err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(raftKey(pg1, raftDrop))
		return err
	}); !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatalf("a refused drop left its marker (%v): the next Open would drop the pg", err)
	}
	logAhead(t, s, 2, a)
	checkObject(t, s, pg1, "o", a.op.data, 2)
	if err := s.DropPG(pg1, 0); err != nil {
		t.Fatal(err)
	}
	checkGone(t, s, pg1)
}

// TestDropPGCrash: a drop cut short by a crash at any step is finished
// by the next Open; the other PGs are untouched.
func TestDropPGCrash(t *testing.T) {
	errCrash := errors.New("crash")
	for step := 1; step <= 4; step++ {
		cfg := testConfig(t)
		s := openStore(t, cfg)
		gone, kept := PG{Pool: 1, Seq: 1}, PG{Pool: 1, Seq: 2}
		fillPG(t, s, gone)
		fillPG(t, s, kept)
		s.dropStop = func(at int) error {
			if at == step {
				return errCrash
			}
			return nil
		}
		if err := s.DropPG(gone, 0); !errors.Is(err, errCrash) {
			t.Fatalf("step %d: DropPG = %v, want the crash", step, err)
		}
		killStore(s)
		s, err := Open(cfg)
		if err != nil {
			t.Fatalf("step %d: reopen: %v", step, err)
		}
		checkGone(t, s, gone)
		checkFilled(t, s, kept, true)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDropPGWhileOthersWork: a drop runs while another PG commits and
// checkpoints run (go test -race checks the locking).
func TestDropPGWhileOthersWork(t *testing.T) {
	s := openStore(t, testConfig(t))
	busy := PG{Pool: 1, Seq: 100}
	var gone []PG
	for i := range uint32(8) {
		gone = append(gone, PG{Pool: 1, Seq: i})
		fillPG(t, s, gone[i])
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= 60; i++ {
			op := testOp{kind: opWrite, name: "x", off: int64(i) * 100, data: pattern(byte(i), 100)}
			b := s.NewBatch()
			err := b.AppendEntries(busy, i, [][]byte{op.encode()})
			if err == nil {
				err = op.addTo(b, busy, i)
			}
			if err == nil {
				err = b.Commit()
			}
			b.Discard()
			if err != nil {
				t.Error(err)
				return
			}
			if i%10 == 0 {
				if err := s.Checkpoint(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for _, pg := range gone {
		if err := s.DropPG(pg, 0); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	for _, pg := range gone {
		checkGone(t, s, pg)
	}
	if info, err := s.Stat(busy, "x"); err != nil || info.Version != 60 || info.Size != 61*100 {
		t.Fatalf("the busy pg's object: %+v, %v", info, err)
	}
}
