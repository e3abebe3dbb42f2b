package writelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// logBuilder writes a log as QEMU's blklogwrites does: super block in
// sector 0 (entry count as of the last flush), then per entry one sector
// with the entry, then its data rounded up to whole sectors.
type logBuilder struct {
	ss      int64
	body    bytes.Buffer
	n, done uint64 // entries; entries the super block counts
}

func (b *logBuilder) entry(sector, sectors, flags uint64, data []byte) {
	hdr := make([]byte, b.ss)
	binary.LittleEndian.PutUint64(hdr[0:], sector)
	binary.LittleEndian.PutUint64(hdr[8:], sectors)
	binary.LittleEndian.PutUint64(hdr[16:], flags)
	b.body.Write(hdr)
	b.body.Write(data)
	b.n++
	if flags&FlagFlush != 0 {
		b.done = b.n
	}
}

func (b *logBuilder) write(sector uint64, data []byte) {
	b.entry(sector, uint64(len(data))/uint64(b.ss), 0, data)
}

func (b *logBuilder) file(t *testing.T) string {
	sb := make([]byte, b.ss)
	binary.LittleEndian.PutUint64(sb[0:], logMagic)
	binary.LittleEndian.PutUint64(sb[8:], logVersion)
	binary.LittleEndian.PutUint64(sb[16:], b.done)
	binary.LittleEndian.PutUint32(sb[24:], uint32(b.ss))
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, append(sb, b.body.Bytes()...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fill(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

// openLog opens the log b built; it is closed at the end of the test.
func openLog(t *testing.T, b *logBuilder) *Log {
	t.Helper()
	l, err := Open(b.file(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// newImage returns an image of sectors sectors of 512 bytes, all zeros,
// with l replayed through entry through onto it (none if negative).
func newImage(t *testing.T, l *Log, sectors int64, through int) *os.File {
	t.Helper()
	img, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	if err := img.Truncate(sectors * 512); err != nil {
		t.Fatal(err)
	}
	if through >= 0 {
		if err := l.Replay(img, through); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// checkSectors checks that each 512-byte sector s of img holds want[s]
// in every byte.
func checkSectors(t *testing.T, img *os.File, want []byte, what string) {
	t.Helper()
	for s, v := range want {
		got := make([]byte, 512)
		if _, err := img.ReadAt(got, int64(s)*512); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, fill(512, v)) {
			t.Errorf("%s: sector %d holds %d..., want %d", what, s, got[0], v)
		}
	}
}

func TestReplayPrefixes(t *testing.T) {
	b := &logBuilder{ss: 512}
	b.write(0, fill(1024, 1))     // 0: sectors 0-1 = 1
	b.write(4, fill(512, 2))      // 1: sector 4 = 2
	b.entry(0, 0, FlagFlush, nil) // 2
	b.write(1, fill(1024, 3))     // 3: sectors 1-2 = 3
	b.entry(0, 2, FlagDiscard, nil)
	b.entry(0, 0, FlagFlush, nil) // 5
	b.write(4, fill(512, 9))      // 6: after the last flush: not counted, but whole
	l := openLog(t, b)
	if len(l.Entries) != 7 {
		t.Fatalf("%d entries, want 7 (6 counted, one whole after them)", len(l.Entries))
	}
	if got := l.Flushes(); len(got) != 2 || got[0] != 2 || got[1] != 5 {
		t.Fatalf("flushes %v", got)
	}
	if got := l.FirstWriteAt(2*512, 1); got != 3 {
		t.Fatalf("first write of sector 2: entry %d, want 3", got)
	}
	for _, tc := range []struct {
		through int
		want    []byte // sectors 0-4, one byte each
	}{
		{2, []byte{1, 1, 0, 0, 2}},
		{5, []byte{0, 0, 3, 0, 2}},
		{6, []byte{0, 0, 3, 0, 9}},
	} {
		img := newImage(t, l, 8, tc.through)
		checkSectors(t, img, tc.want, fmt.Sprintf("through %d", tc.through))
	}
}

func TestApplyWithin(t *testing.T) {
	b := &logBuilder{ss: 512}
	b.write(0, fill(512, 1))
	b.entry(0, 0, FlagFlush, nil) // 1
	b.write(1, fill(512, 2))      // after the flush, outside the range: dropped
	b.write(6, fill(512, 3))      // inside: kept
	b.write(5, fill(1024, 4))     // straddles the range's start: dropped
	b.write(7, fill(512, 5))      // inside: kept
	b.entry(0, 0, FlagFlush, nil) // 6
	l := openLog(t, b)
	img := newImage(t, l, 8, 1)
	if n, err := l.ApplyWithin(nil, 2, 6, 6*512, 2*512); err != nil || n != 2 {
		t.Fatalf("counted %d, %v; want 2", n, err)
	}
	n, err := l.ApplyWithin(img, 2, 6, 6*512, 2*512)
	if err != nil || n != 2 {
		t.Fatalf("applied %d, %v; want 2", n, err)
	}
	checkSectors(t, img, []byte{1, 0, 0, 0, 0, 0, 3, 5}, "after ApplyWithin")
}

func TestOpenRefuses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, fill(4096, 7), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); !errors.Is(err, ErrFormat) {
		t.Fatalf("garbage: %v", err)
	}
	b := &logBuilder{ss: 512}
	b.write(0, fill(1024, 1))
	b.entry(0, 0, FlagFlush, nil)
	path := b.file(t)
	if err := os.Truncate(path, 512+512+512); err != nil { // cut inside entry 0's data
		t.Fatal(err)
	}
	if _, err := Open(path); !errors.Is(err, ErrFormat) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestOpenStopsAtTornTail(t *testing.T) {
	b := &logBuilder{ss: 512}
	b.write(0, fill(512, 1))
	b.entry(0, 0, FlagFlush, nil)
	b.write(1, fill(1024, 2)) // uncounted; its data cut below
	path := b.file(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-512); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if len(l.Entries) != 2 {
		t.Fatalf("%d entries, want the 2 counted (the torn one after them dropped)", len(l.Entries))
	}
}

func TestApply(t *testing.T) {
	b := &logBuilder{ss: 512}
	b.write(0, fill(1024, 1))       // 0
	b.entry(0, 0, FlagFlush, nil)   // 1
	b.write(0, fill(512, 2))        // 2: applied
	b.write(1, fill(512, 3))        // 3: left out
	b.entry(0, 1, FlagDiscard, nil) // 4: applied: sector 0 a hole again
	b.write(3, fill(512, 4))        // 5: applied
	l := openLog(t, b)
	img := newImage(t, l, 4, 1)
	for _, i := range []int{2, 4, 5, 1} {
		if err := l.Apply(img, i); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{-1, 6} {
		if err := l.Apply(img, i); err == nil {
			t.Errorf("Apply(%d) of 6 entries: no error", i)
		}
	}
	checkSectors(t, img, []byte{0, 1, 0, 4}, "after Apply")
}

// TestOpenStopsAtZeroHeader: an entry the super block counts whose header
// is all zeros (its log write was in flight when QEMU was killed) ends the
// entries read, and is reported.
func TestOpenStopsAtZeroHeader(t *testing.T) {
	b := &logBuilder{ss: 512}
	b.write(0, fill(512, 1))
	b.body.Write(make([]byte, 512)) // counted, never written
	b.n++
	b.write(1, fill(512, 2))
	b.entry(0, 0, FlagFlush, nil) // counts all four
	l := openLog(t, b)
	if len(l.Entries) != 1 || l.TornAt != 1 {
		t.Fatalf("%d entries, torn at %d; want 1 and 1", len(l.Entries), l.TornAt)
	}
	if l := openLog(t, &logBuilder{ss: 512}); l.TornAt != -1 {
		t.Fatalf("an empty log: torn at %d, want -1", l.TornAt)
	}
}

// TestApplyTorn: a write or discard applied torn keeps exactly the pages
// keep chose, cut at page boundaries of the disk, not of the write.
func TestApplyTorn(t *testing.T) {
	b := &logBuilder{ss: 512}
	b.write(0, fill(8*512, 1))      // 0: sectors 0-7
	b.entry(0, 0, FlagFlush, nil)   // 1
	b.write(1, fill(6*512, 2))      // 2: sectors 1-6: pages [1,2) [2,4) [4,6) [6,7) of 1024 bytes
	b.entry(4, 4, FlagDiscard, nil) // 3: sectors 4-7: pages [4,6) [6,8)
	l := openLog(t, b)
	img := newImage(t, l, 8, 1)
	var calls int
	pattern := func(keep ...bool) func() bool {
		return func() bool { calls++; return keep[calls-1] }
	}
	calls = 0
	kept, pages, err := l.ApplyTorn(img, 2, 1024, pattern(true, false, true, false))
	if err != nil || kept != 2 || pages != 4 {
		t.Fatalf("torn write: kept %d of %d pages (%v), want 2 of 4", kept, pages, err)
	}
	checkSectors(t, img, []byte{1, 2, 1, 1, 2, 2, 1, 1}, "torn write")
	calls = 0
	if kept, pages, err := l.ApplyTorn(img, 3, 1024, pattern(false, true)); err != nil || kept != 1 || pages != 2 {
		t.Fatalf("torn discard: kept %d of %d pages (%v), want 1 of 2", kept, pages, err)
	}
	checkSectors(t, img, []byte{1, 2, 1, 1, 2, 2, 0, 0}, "torn discard")
	if kept, pages, err := l.ApplyTorn(img, 1, 1024, nil); err != nil || kept+pages != 0 {
		t.Fatalf("a flush: kept %d of %d pages (%v), want none", kept, pages, err)
	}
	for _, page := range []int64{0, 700} {
		if _, _, err := l.ApplyTorn(img, 2, page, func() bool { return true }); err == nil {
			t.Errorf("a page of %d bytes: no error", page)
		}
	}
}
