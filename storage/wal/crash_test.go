package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCheckpointAfterUnwrittenRotation: a crash (or a failed write) right
// after a rotation created the next segment leaves that segment empty.
// The first commit after reopening must still start it with a checkpoint,
// or deleting the older segments loses the hard state of every PG that
// wrote nothing since.
func TestCheckpointAfterUnwrittenRotation(t *testing.T) {
	dir := t.TempDir()
	const seg = 16 << 10
	x, y := PG{1, 1}, PG{1, 2}
	l := open(t, dir, seg)
	var b Batch
	b.HardState(x, []byte("x-term-7-vote-3"))
	b.Append(y, 1, [][]byte{ent(y, 1, 1000)})
	if err := l.Commit(&b); err != nil {
		t.Fatal(err)
	}
	active := l.active
	l.Close()
	// The rotation created and synced the next segment; nothing reached it.
	if err := os.WriteFile(filepath.Join(dir, segName(active+1)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, seg)
	b = Batch{}
	b.Append(y, 2, [][]byte{ent(y, 2, 1000)})
	b.Compact(y, 2) // y keeps nothing in the older segment: it goes
	if err := l.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if segs, _ := listSegments(dir); len(segs) != 1 || segs[0] != active+1 {
		t.Fatalf("segments %v, want only %d (the test needs the older one deleted)", segs, active+1)
	}
	l.Close()
	l = open(t, dir, seg)
	if hs, first, last := l.State(x); string(hs) != "x-term-7-vote-3" || first != 1 || last != 0 {
		t.Fatalf("pg %s after the older segment went: hs %q first %d last %d, want its hard state back", x, hs, first, last)
	}
	if got, err := l.Entries(y, 2, 3, 1<<20); err != nil || !bytes.Equal(got[0], ent(y, 2, 1000)) {
		t.Fatalf("pg %s entry 2: %v", y, err)
	}
}

// TestStalePagesPastTheEndAreCleared: a crash that lost a commit's first
// page but kept later ones leaves those pages past the end of the log.
// A later commit that ends on a block boundary puts them right after a
// record, where replay would read them: as a corrupt record once the
// segment is no longer the last, or as a record never acknowledged. Open
// must clear them.
func TestStalePagesPastTheEndAreCleared(t *testing.T) {
	pg := PG{2, 5}
	const seg = 1 << 20
	staleRec := func() []byte { // a whole record of the lost commit: it would replace entry 2
		var b Batch
		b.Append(pg, 2, [][]byte{[]byte("stale entry, never acknowledged")})
		return b.buf
	}
	for _, tc := range []struct {
		name string
		tail []byte // what lies right after the large commit
	}{
		{"garbage", bytes.Repeat([]byte{0xab}, blockAlign)},
		{"stale record", staleRec()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, seg)
			var b Batch
			b.Append(pg, 1, [][]byte{ent(pg, 1, 100)})
			b.HardState(pg, []byte("old"))
			if err := l.Commit(&b); err != nil {
				t.Fatal(err)
			}
			end := l.off
			l.Close()

			// The next commit, of size: its block at end lost, the rest kept.
			const size = 33 * blockAlign // >= zeroBelow: writes no zeros ahead
			f, err := os.OpenFile(filepath.Join(dir, segName(1)), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xab}, size-blockAlign), end+blockAlign); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(tc.tail, end+size); err != nil {
				t.Fatal(err)
			}
			f.Close()

			l = open(t, dir, seg)
			if l.off != end {
				t.Fatalf("reopened at %d, want %d", l.off, end)
			}
			// The first commit after Open starts with a checkpoint; with it
			// and the hard state record, this one is size bytes.
			ckpt := len(l.checkpoint())
			e2 := ent(pg, 2, size-ckpt-57)
			b = Batch{}
			b.Append(pg, 2, [][]byte{e2})
			b.HardState(pg, []byte("new"))
			if ckpt+len(b.buf) != size {
				t.Fatalf("commit of %d bytes, want %d (ending on a block boundary)", ckpt+len(b.buf), size)
			}
			if err := l.Commit(&b); err != nil {
				t.Fatal(err)
			}
			b = Batch{} // does not fit: rotates, and segment 1 is no longer the last
			e3 := ent(pg, 3, seg-int(l.off))
			b.Append(pg, 3, [][]byte{e3})
			if err := l.Commit(&b); err != nil {
				t.Fatal(err)
			}
			if l.active != 2 {
				t.Fatalf("active segment %d, want 2", l.active)
			}
			l.Close()

			l, err = Open(Config{Dir: dir, SegmentSize: seg, Logger: l.log})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer l.Close()
			m := &model{
				first: map[PG]uint64{pg: 1},
				ents:  map[PG][][]byte{pg: {ent(pg, 1, 100), e2, e3}},
				hs:    map[PG][]byte{pg: []byte("new")},
			}
			m.check(t, l)
		})
	}
}
