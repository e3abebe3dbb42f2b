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
