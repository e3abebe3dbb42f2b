package chunkstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOrphansRemovedAtOpen: a file that no meta and no placed record
// names is removed when the store opens: here the file of a new object
// whose placed entry raft replaced before it was applied, and a file of a
// PG nothing knows, and the file of a new object made by whole entries
// whose meta had not reached badger (the replay makes it again). The
// files of an object with a meta and of one whose placed entry is still
// in the log (not applied: the crash came first) stay, and that entry is
// rebuilt from its slots and applies. Names that
// are not object files are left alone.
func TestOrphansRemovedAtOpen(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	kept := testOp{kind: opWrite, name: "k", off: 0, data: pattern(1, 16<<12)}
	logOps(t, s, 1, kept)
	compact(t, s, 2)
	appendPlaced := func(index uint64, op testOp) []byte {
		t.Helper()
		e := op.encode()
		b := s.NewBatch()
		if err := b.AppendPlaced(pg1, index, [][]byte{e}, []Place{{Entry: 0, Object: op.name, Offset: op.off,
			Lo: op.headerLen(), Hi: len(e), Direct: true}}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		return e
	}
	// A new object's placed entry at 2, replaced by a new leader's entry.
	appendPlaced(2, testOp{kind: opWrite, name: "n", off: 0, data: pattern(2, 16<<12)})
	replacing := testOp{kind: opWrite, name: "k", off: 0, data: pattern(3, 4<<10)}
	logOps(t, s, 2, replacing)
	// A new object made by whole entries at 3 and 4, applied, its meta not
	// yet in badger at the crash: its file goes, the replay makes it again.
	whole := []testOp{{kind: opWrite, name: "w", off: 0, data: pattern(5, 3<<12)},
		{kind: opWrite, name: "w", off: 5000, data: pattern(6, 100)}}
	logOps(t, s, 3, whole...)
	// A new object's placed entry at 5, logged, not applied.
	placed := testOp{kind: opWrite, name: "p", off: 0, data: pattern(4, 16<<12)}
	entry := appendPlaced(5, placed)
	for _, name := range []string{"n", "p"} {
		if alloc := allocatedData(t, s, pg1, name); alloc[0]+alloc[1] == 0 {
			t.Fatalf("object %s's file holds no data before the crash", name)
		}
	}
	killStore(s)

	root := filepath.Join(cfg.Dir, "objects")
	lostPG := filepath.Join(root, newObjID(PG{Pool: 9, Seq: 0x1f}, "x").rel())
	odd := []string{filepath.Join(root, "README"), filepath.Join(root, pgDirName(pg1), "not-an-object"),
		filepath.Join(root, pgDirName(pg1), strings.Repeat("ab", 20))} // hex, but longer than a name hash
	for _, p := range append([]string{lostPG}, odd...) {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{7}, 8192), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, cfg)
	if got := s.Orphans(); got.Files != 3 || got.Bytes < 16<<12 {
		t.Fatalf("Orphans() = %+v; want 3 files (n's, w's and the unknown PG's), at least %d bytes", got, 16<<12)
	}
	exists := func(p string) bool {
		_, err := os.Stat(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}
	if exists(filepath.Join(root, newObjID(pg1, "n").rel())) || exists(filepath.Dir(lostPG)) {
		t.Fatal("an orphan file (or its emptied PG folder) is still there")
	}
	for _, p := range append(odd, filepath.Join(root, newObjID(pg1, "k").rel()), filepath.Join(root, newObjID(pg1, "p").rel())) {
		if !exists(p) {
			t.Fatalf("%s was removed", p)
		}
	}
	got, err := s.Entries(pg1, 5, 6, 1<<30)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], entry) {
		t.Fatalf("Entries(5) after the reopen = %d entries, %v; want the placed entry rebuilt from its slots", len(got), err)
	}
	b := s.NewBatch() // the replay: every entry after the checkpoint again
	for i, op := range []testOp{replacing, whole[0], whole[1], placed} {
		if err := op.addTo(b, pg1, uint64(2+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	m := model{}
	whole[0].applyTo(m, pg1, 3)
	whole[1].applyTo(m, pg1, 4)
	checkObject(t, s, pg1, "w", m[pg1]["w"].data, 4)
	checkObject(t, s, pg1, "p", placed.data, 5)
	s = reopen(t, s)
	if got := s.Orphans(); got.Files != 0 {
		t.Fatalf("second open: Orphans() = %+v; want none", got)
	}
	checkObject(t, s, pg1, "p", placed.data, 5)
	checkObject(t, s, pg1, "w", m[pg1]["w"].data, 4)
	checkObject(t, s, pg1, "k", cat(pattern(3, 4<<10), kept.data[4<<10:]), 2)
}
