package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

func open(t *testing.T, dir string, seg int64) *Log {
	t.Helper()
	l, err := Open(Config{Dir: dir, SegmentSize: seg, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func ent(pg PG, i uint64, size int) []byte {
	tag := []byte(fmt.Sprintf("%s:%d|", pg, i))
	return bytes.Repeat(tag, size/len(tag)+1)[:size]
}

// model is the naive log the real one is checked against.
type model struct {
	first map[PG]uint64
	ents  map[PG][][]byte
	marks map[PG][]bool // nil: marks are not checked
	hs    map[PG][]byte
}

func (m *model) check(t *testing.T, l *Log) {
	t.Helper()
	for pg, ents := range m.ents {
		hs, first, last := l.State(pg)
		if first != m.first[pg] || last != first+uint64(len(ents))-1 || !bytes.Equal(hs, m.hs[pg]) {
			t.Fatalf("pg %s: state first %d last %d hs %q, want first %d last %d hs %q",
				pg, first, last, hs, m.first[pg], m.first[pg]+uint64(len(ents))-1, m.hs[pg])
		}
		if len(ents) == 0 {
			continue
		}
		got, marks, err := l.EntriesMarked(pg, first, last+1, ^uint64(0))
		if err != nil {
			t.Fatal(err)
		}
		var marked []uint64
		for i := range ents {
			if !bytes.Equal(got[i], ents[i]) {
				t.Fatalf("pg %s entry %d differs", pg, first+uint64(i))
			}
			if m.marks != nil && marks[i] != m.marks[pg][i] {
				t.Fatalf("pg %s entry %d: marked %v, want %v", pg, first+uint64(i), marks[i], m.marks[pg][i])
			}
			if marks[i] {
				marked = append(marked, first+uint64(i))
			}
		}
		if got := l.Marked(pg); fmt.Sprint(got) != fmt.Sprint(marked) {
			t.Fatalf("pg %s: Marked() = %v, want %v", pg, got, marked)
		}
	}
}

// TestModel appends, overwrites suffixes, compacts, drops and reopens at random,
// with small segments so rotation, checkpoints and deletion all happen.
func TestModel(t *testing.T) {
	for seed := uint64(1); seed <= seeds(); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 9))
			dir := t.TempDir()
			l := open(t, dir, 64<<10)
			m := &model{first: map[PG]uint64{}, ents: map[PG][][]byte{}, marks: map[PG][]bool{}, hs: map[PG][]byte{}}
			pgs := []PG{{1, 0}, {1, 1}, {2, 7}}
			for _, pg := range pgs {
				m.first[pg] = 1
				m.ents[pg] = nil
			}
			for step := 0; step < 400; step++ {
				var b Batch
				for _, pg := range pgs {
					if rng.IntN(2) == 0 {
						continue
					}
					if rng.IntN(50) == 0 { // forget the PG; it starts again from 1
						b.Drop(pg)
						m.first[pg], m.ents[pg], m.marks[pg], m.hs[pg] = 1, nil, nil, nil
						continue
					}
					last := m.first[pg] + uint64(len(m.ents[pg])) - 1
					if len(m.ents[pg]) > 0 && rng.IntN(4) == 0 { // rewrite one entry, maybe one not in the log
						k := m.first[pg] + uint64(rng.IntN(len(m.ents[pg])+2)) - 1
						e, mk := ent(pg, k+1000*uint64(step), 1+rng.IntN(3000)), rng.IntN(2) == 0
						b.Rewrite(pg, k, e, mk)
						if k >= m.first[pg] && k <= last {
							m.ents[pg][k-m.first[pg]] = e
							m.marks[pg][k-m.first[pg]] = mk
						}
					}
					at := last + 1
					if len(m.ents[pg]) > 0 && rng.IntN(5) == 0 { // conflicting suffix
						at = m.first[pg] + uint64(rng.IntN(len(m.ents[pg])))
					}
					var ents [][]byte
					var marks []bool
					for i := 0; i < 1+rng.IntN(4); i++ {
						ents = append(ents, ent(pg, at+uint64(i), 1+rng.IntN(3000)))
						marks = append(marks, rng.IntN(3) == 0)
					}
					if rng.IntN(2) == 0 {
						b.AppendMarked(pg, at, ents, marks)
					} else {
						b.Append(pg, at, ents)
						marks = make([]bool, len(ents))
					}
					m.ents[pg] = append(m.ents[pg][:at-m.first[pg]], ents...)
					m.marks[pg] = append(m.marks[pg][:at-m.first[pg]], marks...)
					hs := []byte(fmt.Sprintf("hs-%d-%d", step, pg.Seq))
					b.HardState(pg, hs)
					m.hs[pg] = hs
					if rng.IntN(4) == 0 && len(m.ents[pg]) > 2 {
						upTo := m.first[pg] + uint64(rng.IntN(len(m.ents[pg])))
						b.Compact(pg, upTo)
						m.ents[pg] = m.ents[pg][upTo-m.first[pg]:]
						m.marks[pg] = m.marks[pg][upTo-m.first[pg]:]
						m.first[pg] = upTo
					}
				}
				if err := l.Commit(&b); err != nil {
					t.Fatal(err)
				}
				m.check(t, l)
				if rng.IntN(40) == 0 {
					l.Close()
					l = open(t, dir, 64<<10)
				}
				m.check(t, l)
			}
			segs, _ := listSegments(dir)
			if len(segs) > 40 {
				t.Fatalf("%d segments kept: old segments are not deleted", len(segs))
			}
		})
	}
}

func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 1<<20)
	pg := PG{1, 1}
	var b Batch
	b.Append(pg, 1, [][]byte{[]byte("one"), []byte("two")})
	if err := l.Commit(&b); err != nil {
		t.Fatal(err)
	}
	var b2 Batch
	b2.Append(pg, 3, [][]byte{bytes.Repeat([]byte("x"), 1000)})
	start := l.off
	if err := l.Commit(&b2); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// Tear the second record: damage its last bytes as a crash mid-write would.
	path := filepath.Join(dir, segName(1))
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte{0, 0, 0, 0}, start+int64(len(b2.buf))-4)
	f.Close()
	l = open(t, dir, 1<<20)
	if _, _, last := l.State(pg); last != 2 {
		t.Fatalf("last = %d after a torn tail, want 2", last)
	}
	var b3 Batch
	b3.Append(pg, 3, [][]byte{[]byte("three")})
	if err := l.Commit(&b3); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, dir, 1<<20)
	got, err := l.Entries(pg, 1, 4, 1<<20)
	if err != nil || string(got[2]) != "three" {
		t.Fatalf("after cut and append: %q %v", got, err)
	}
}

func TestCorruptionIsDetected(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 4<<10)
	pg := PG{3, 3}
	for i := uint64(1); i <= 20; i++ {
		var b Batch
		b.Append(pg, i, [][]byte{bytes.Repeat([]byte{byte(i)}, 900)})
		if err := l.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	segs, _ := listSegments(dir)
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	// Damage inside an older segment: Open refuses with ErrCorrupt.
	path := filepath.Join(dir, segName(segs[0]))
	data, _ := os.ReadFile(path)
	data[100] ^= 0xff
	os.WriteFile(path, data, 0o600)
	if _, err := Open(Config{Dir: dir, Logger: zap.NewNop()}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open over a damaged segment: %v, want ErrCorrupt", err)
	}
}

func TestEntriesLimitsAndBounds(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 0)
	pg := PG{1, 2}
	var b Batch
	b.Append(pg, 1, [][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 100)})
	if err := l.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Entries(pg, 1, 4, 150); len(got) != 1 {
		t.Fatalf("maxBytes 150: %d entries, want 1", len(got))
	}
	if got, _ := l.Entries(pg, 1, 4, 0); len(got) != 1 {
		t.Fatalf("maxBytes 0: %d entries, want at least 1", len(got))
	}
	if _, err := l.Entries(pg, 2, 5, 1000); !errors.Is(err, ErrNotFound) {
		t.Fatalf("past the end: %v", err)
	}
	var gap Batch
	gap.Append(pg, 9, [][]byte{[]byte("x")})
	if err := l.Commit(&gap); !errors.Is(err, ErrInvalid) {
		t.Fatalf("append with a gap: %v, want ErrInvalid", err)
	}
	// A batch refused is not written: read back, it would restart the
	// log at the gap (replay takes it for history since deleted).
	var below Batch
	below.Append(pg, 4, [][]byte{[]byte("y")})
	below.Compact(pg, 2)
	below.Append(pg, 1, [][]byte{[]byte("z")})
	if err := l.Commit(&below); !errors.Is(err, ErrInvalid) {
		t.Fatalf("append below a compaction in the same batch: %v, want ErrInvalid", err)
	}
	l.Close()
	l = open(t, dir, 0)
	if _, first, last := l.State(pg); first != 1 || last != 3 {
		t.Fatalf("after refused batches, reopened: entries [%d, %d], want [1, 3]", first, last)
	}
	var next Batch
	next.Append(pg, 4, [][]byte{[]byte("w")})
	if err := l.Commit(&next); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkCommit4K(b *testing.B) {
	l, err := Open(Config{Dir: b.TempDir(), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := make([]byte, 4200)
	b.SetBytes(int64(len(e)))
	for i := 0; i < b.N; i++ {
		var batch Batch
		batch.Append(PG{1, 1}, uint64(i+1), [][]byte{e})
		batch.HardState(PG{1, 1}, []byte("hs"))
		if err := l.Commit(&batch); err != nil {
			b.Fatal(err)
		}
	}
}

func seeds() uint64 {
	if testing.Short() {
		return 8
	}
	if os.Getenv("WAL_SEEDS") != "" {
		n, _ := strconv.Atoi(os.Getenv("WAL_SEEDS"))
		return uint64(n)
	}
	return 30
}

// TestCommitPadding: commits whose padding to the next block is shorter
// than a record header (and every other size around it) replay in full.
func TestCommitPadding(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 1<<20)
	pg := PG{3, 3}
	var want [][]byte
	for pad := 0; pad <= 10; pad++ {
		e := bytes.Repeat([]byte{byte(pad + 1)}, blockAlign-37-pad) // one record of blockAlign-pad bytes
		var b Batch
		b.Append(pg, uint64(len(want)+1), [][]byte{e})
		if len(b.buf) != blockAlign-pad {
			t.Fatalf("record of %d bytes, want %d", len(b.buf), blockAlign-pad)
		}
		if err := l.Commit(&b); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	l.Close()
	l = open(t, dir, 1<<20)
	got, err := l.Entries(pg, 1, uint64(len(want)+1), 1<<30)
	if err != nil || len(got) != len(want) {
		t.Fatalf("Entries = %d, %v; want %d", len(got), err, len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d differs", i+1)
		}
	}
}

// TestZeroesAhead: a commit into a fresh segment also writes zeros up to
// the next zeroStep boundary, so the next synchronous commits overwrite
// written blocks instead of converting preallocated ones. Checked with
// SEEK_HOLE, which reports preallocated, never-written blocks as a hole on
// ext4 and xfs; skipped where the filesystem does not.
func TestZeroesAhead(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 4*zeroStep)
	writtenEnd := holeProbe(t, l)
	pg := PG{1, 1}
	var b Batch
	b.Append(pg, 1, [][]byte{ent(pg, 1, 100)})
	if err := l.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if hole := writtenEnd(); hole < zeroStep {
		t.Fatalf("written blocks end at %d after the first commit, want zeros written up to %d", hole, zeroStep)
	}
	// The zeros read as the end of the log.
	l.Close()
	l = open(t, dir, 4*zeroStep)
	if got, err := l.Entries(pg, 1, 2, 1<<20); err != nil || len(got) != 1 || !bytes.Equal(got[0], ent(pg, 1, 100)) {
		t.Fatalf("after reopening: %d entries, %v", len(got), err)
	}
	if l.off != blockAlign {
		t.Fatalf("reopened log writes at %d, want %d", l.off, blockAlign)
	}
}

// A large commit writes no zeros ahead (they would double the device bytes
// of a stream of large commits); the next small commit does.
func TestLargeCommitWritesNoZeros(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 4*zeroStep)
	holeAt := holeProbe(t, l)
	pg := PG{1, 1}
	var b Batch
	b.Append(pg, 1, [][]byte{ent(pg, 1, zeroBelow)})
	if err := l.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if hole := holeAt(); hole != l.off {
		t.Fatalf("written blocks end at %d after a large commit, want %d (its end, no zeros)", hole, l.off)
	}
	b = Batch{}
	b.Append(pg, 2, [][]byte{ent(pg, 2, 100)})
	if err := l.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if hole := holeAt(); hole != alignTo(l.off, zeroStep) {
		t.Fatalf("written blocks end at %d after a small commit, want zeros up to %d", hole, alignTo(l.off, zeroStep))
	}
	l.Close()
	l = open(t, dir, 4*zeroStep)
	if got, err := l.Entries(pg, 1, 3, 4<<20); err != nil || len(got) != 2 || !bytes.Equal(got[1], ent(pg, 2, 100)) {
		t.Fatalf("after reopening: %d entries, %v", len(got), err)
	}
}

// holeProbe skips the test unless the filesystem reports the active
// segment's preallocated, never-written blocks as a hole, and returns a
// function giving where the segment's written blocks end (its first hole).
func holeProbe(t *testing.T, l *Log) func() int64 {
	t.Helper()
	f := l.segs[l.active]
	if hole, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE); err != nil || hole != 0 {
		t.Skipf("this filesystem does not report preallocated blocks as a hole (SEEK_HOLE = %d, %v)", hole, err)
	}
	return func() int64 {
		t.Helper()
		hole, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		return hole
	}
}

// TestDroppedPGStaysDroppedWhenSegmentsLinger: old segments are deleted
// oldest first, and a failure keeps every later one, so a PG's entries
// are never left without the later segment that drops it; reopened, the
// log does not bring the PG back.
func TestDroppedPGStaysDroppedWhenSegmentsLinger(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 64<<10)
	anchor, gone := PG{Pool: 1, Seq: 1}, PG{Pool: 1, Seq: 2}
	commit := func(b *Batch) {
		t.Helper()
		if err := l.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	// anchor's entry holds the first segment while gone's entries fill
	// the next ones and gone is dropped.
	var b Batch
	b.Append(anchor, 1, [][]byte{ent(anchor, 1, 100)})
	commit(&b)
	for i := uint64(1); i <= 40; i++ {
		var b Batch
		b.Append(gone, i, [][]byte{ent(gone, i, 4000)})
		commit(&b)
	}
	b = Batch{}
	b.Drop(gone)
	commit(&b)
	dropSeg := l.active
	// Rotate past the segment holding the Drop, so that it may be deleted
	// too (filler's entries are compacted as they go).
	filler := PG{Pool: 1, Seq: 3}
	for i := uint64(1); l.active == dropSeg; i++ {
		var b Batch
		b.Append(filler, i, [][]byte{ent(filler, i, 4000)})
		b.Compact(filler, i)
		commit(&b)
	}
	first := filepath.Join(dir, segName(1))
	if dropSeg < 3 {
		t.Fatalf("the test needs gone's entries over several segments (the Drop is in segment %d)", dropSeg)
	}
	l.remove = func(name string) error {
		if name == first {
			return unix.EBUSY
		}
		return os.Remove(name)
	}
	b = Batch{}
	b.Compact(anchor, 2) // frees every segment before the active one
	commit(&b)
	for seq := uint64(1); seq <= dropSeg; seq++ {
		if _, err := os.Stat(filepath.Join(dir, segName(seq))); err != nil {
			t.Fatalf("segment %d deleted although segment 1 could not be: %v", seq, err)
		}
	}
	l.Close()
	l = open(t, dir, 64<<10)
	if _, first, last := l.State(gone); last >= first {
		t.Fatalf("reopened, the dropped pg is back with entries [%d, %d]", first, last)
	}
	if _, first, last := l.State(anchor); first != 2 || last != 1 {
		t.Fatalf("reopened, anchor's log is [%d, %d], want empty from 2", first, last)
	}
}
