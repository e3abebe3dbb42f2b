package chunkstore

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestReclaimPunchesStaleSlots: passes of placed writes over one object
// alternate its blocks between slots; once checkpoints have released the
// claims, the stale copies beyond the stale reserve are punched (all of
// them with no reserve), the data reads back and the entry still in the
// log rebuilds from its slots. Close punches what the reserve kept.
func TestReclaimPunchesStaleSlots(t *testing.T) {
	for _, direct := range []bool{false, true} {
		for _, reserve := range []int64{-1, 512 << 10, 8 << 20} {
			t.Run(fmt.Sprint("direct=", direct, ",reserve=", reserve), func(t *testing.T) { testReclaim(t, direct, reserve) })
		}
	}
}

func testReclaim(t *testing.T, direct bool, reserve int64) {
	cfg := testConfig(t)
	cfg.StaleReserve = reserve
	s := openStore(t, cfg)
	const chunk, span, passes = 64 << 10, 1 << 20, 3
	index := uint64(0)
	var want []byte
	var ents [][]byte
	for pass := range passes {
		want = pattern(byte(pass+1), span)
		ents = append(ents, placePass(t, s, "o", want, chunk, direct, &index)...)
		if err := s.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.stats.placed.Load(); got != int64(len(ents)) {
		t.Fatalf("placed %d entries, want %d", got, len(ents))
	}
	// The last entry is still in the log, rebuilt from its slots.
	got, err := s.Entries(pg1, index, index+1, 1<<30)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], ents[len(ents)-1]) {
		t.Fatalf("Entries(last) = %d entries, %v; want the last placed entry rebuilt", len(got), err)
	}
	checkObject(t, s, pg1, "o", want, index)
	// Each pass but the first left a stale copy of every block; the
	// reserve keeps the newest of them, up to its budget. A partial
	// reserve may hold a chunk less: the last pass's writes reused
	// reserved slots, whose bytes count until they leave the reserve.
	kept := min(s.reserveBudget(), span)
	alloc := allocatedData(t, s, pg1, "o")
	partial := kept > 0 && kept < span
	if got := alloc[0] + alloc[1]; got > span+kept || (got != span+kept && (!partial || got < span+kept-chunk)) {
		t.Fatalf("data allocated: slot 0 %d, slot 1 %d bytes; want %d in all (one copy per block, %d kept stale)",
			alloc[0], alloc[1], span+kept, kept)
	}
	// The reserve keeps blocks on disk, not in memory: the stale copies'
	// cached pages were dropped (all but the last chunk's, whose claim the
	// entry still in the log holds).
	if res := residentData(t, s, pg1, "o"); !direct && min(res[0], res[1]) > chunk {
		t.Fatalf("cached: slot 0 %d, slot 1 %d bytes; want at most %d of the stale slot", res[0], res[1], chunk)
	}
	if punched := s.stats.reclaimed.Load() > 0; punched != (kept < span) {
		t.Fatalf("reclaim punched %d blocks with %d of %d stale bytes kept", s.stats.reclaimed.Load(), kept, span)
	}
	if direct && s.stats.direct.Load() != int64(len(ents)) && !s.noDirect.Load() {
		t.Fatalf("%d of %d placements written direct", s.stats.direct.Load(), len(ents))
	}
	s = reopen(t, s)
	if alloc := allocatedData(t, s, pg1, "o"); alloc[0]+alloc[1] != span {
		t.Fatalf("after Close: slot 0 %d, slot 1 %d bytes allocated; want %d (the reserve punched)", alloc[0], alloc[1], span)
	}
	checkObject(t, s, pg1, "o", want, index)
}

// placePass writes data over object name in placed writes of chunk bytes,
// each its own entry (from *index+1 on), applied and compacted in its own
// batch as the OSD does, and returns the entries.
func placePass(t *testing.T, s *Store, name string, data []byte, chunk int, direct bool, index *uint64) [][]byte {
	t.Helper()
	var ents [][]byte
	for off := 0; off < len(data); off += chunk {
		*index++
		op := testOp{kind: opWrite, name: name, off: int64(off), data: data[off : off+chunk]}
		e := op.encode()
		ents = append(ents, e)
		b := s.NewBatch()
		if err := b.AppendPlaced(pg1, *index, [][]byte{e}, []Place{{Entry: 0, Object: name, Offset: int64(off), Lo: op.headerLen(), Hi: len(e), Direct: direct}}); err != nil {
			t.Fatal(err)
		}
		if err := b.Write(pg1, name, int64(off), op.data, *index); err != nil {
			t.Fatal(err)
		}
		if err := b.SetApplyState(pg1, []byte{byte(*index)}); err != nil {
			t.Fatal(err)
		}
		if err := b.CompactLog(pg1, *index); err != nil { // as the OSD does once applied
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return ents
}

// residentData returns how many bytes of each slot's data area of an
// object's file are in the page cache (mincore).
func residentData(t *testing.T, s *Store, pg PG, name string) [2]int64 {
	t.Helper()
	return perSlot(t, s, pg, name, func(f *os.File, lo, hi int64) int64 {
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if hi = min(hi, st.Size()); hi <= lo {
			return 0
		}
		m, err := unix.Mmap(int(f.Fd()), lo, int(hi-lo), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(m)
		page := int64(os.Getpagesize())
		vec := make([]byte, (hi-lo+page-1)/page)
		if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			t.Fatal(errno)
		}
		var n int64
		for _, v := range vec {
			n += int64(v&1) * page
		}
		return n
	})
}

// allocatedData returns how many bytes of each slot's data area of an
// object's file hold data (SEEK_DATA/SEEK_HOLE).
func allocatedData(t *testing.T, s *Store, pg PG, name string) [2]int64 {
	t.Helper()
	return perSlot(t, s, pg, name, func(f *os.File, lo, hi int64) int64 {
		rs, err := dataRanges(f, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range rs {
			n += r[1] - r[0]
		}
		return n
	})
}

// perSlot opens an object's file and returns count of each slot's data
// area, the byte range [lo, hi).
func perSlot(t *testing.T, s *Store, pg PG, name string, count func(f *os.File, lo, hi int64) int64) [2]int64 {
	t.Helper()
	id := newObjID(pg, name)
	f, err := os.Open(filepath.Join(s.files.root, id.rel()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := s.blockIO(id, f, loc{})
	var out [2]int64
	for slot := range 2 {
		out[slot] = count(f, b.dataOff(0, slot), b.dataOff(0, slot)+MaxObjectSize)
	}
	return out
}

// TestWriteDirectRefusal: a direct write the kernel cannot do (a length
// that is not a multiple of the alignment) is EINVAL, which place takes
// as the file system's refusal and answers by writing through the page
// cache.
func TestWriteDirectRefusal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := openDirect(path)
	if err != nil {
		t.Skipf("no O_DIRECT here: %v", err)
	}
	defer f.Close()
	b := &blockIO{direct: f, bufs: newDirectBufs()}
	if err := b.writeDirect(make([]byte, 1000), 0); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("writeDirect of 1000 bytes = %v, want EINVAL", err)
	}
	if err := b.writeDirect(pattern(3, 8192), 4096); err != nil {
		t.Fatalf("writeDirect of two aligned blocks: %v", err)
	}
}

// TestUnsyncedDirs: syncPlaced syncs a directory only while an entry
// created in it may not be durable: every directory once after open, then
// only after a creation, including one made while it synced.
func TestUnsyncedDirs(t *testing.T) {
	c := newFileCache(t.TempDir(), 8)
	defer c.closeAll()
	dirs := []string{".", "1.1"}
	keys := func(m map[string]uint64) []string { return slices.Sorted(maps.Keys(m)) }
	if got := keys(c.unsyncedDirs(dirs)); !slices.Equal(got, dirs) {
		t.Fatalf("after open: %v, want %v", got, dirs)
	}
	c.dirsSynced(c.unsyncedDirs(dirs))
	if got := keys(c.unsyncedDirs(dirs)); len(got) != 0 {
		t.Fatalf("after a sync: %v, want none", got)
	}
	of, err := c.get("1.1/a", true, false)
	if err != nil {
		t.Fatal(err)
	}
	c.put(of)
	need := c.unsyncedDirs(dirs)
	if got := keys(need); !slices.Equal(got, dirs) {
		t.Fatalf("after creating 1.1/a (and 1.1): %v, want %v", got, dirs)
	}
	of, err = c.get("1.1/b", true, false) // created while need is being synced
	if err != nil {
		t.Fatal(err)
	}
	c.put(of)
	c.dirsSynced(need)
	if got := keys(c.unsyncedDirs(dirs)); !slices.Equal(got, []string{"1.1"}) {
		t.Fatalf("after 1.1/b was created during the sync: %v, want [1.1]", got)
	}
}

// TestReclaimBesidePlacements: checkpoints run in a loop beside a writer
// whose placed writes keep moving the same blocks between slots, so a
// reclaim often punches the slot the next placement would take. Reclaim
// punches without placeMu; its in-flight mark must keep that placement
// out of the slot (it goes whole into the log instead), or the punch
// destroys the new data. Every write reads back; run with -race.
func TestReclaimBesidePlacements(t *testing.T) {
	cfg := testConfig(t)
	cfg.StaleReserve = 64 << 10 // punches run late, beside writes that may reuse the slot
	s := openStore(t, cfg)
	const chunk, rounds = 64 << 10, 400
	stop := make(chan struct{})
	ckpt := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				ckpt <- nil
				return
			default:
			}
			if err := s.Checkpoint(); err != nil {
				ckpt <- err
				return
			}
		}
	}()
	want := map[string][]byte{}
	for r := range rounds {
		index := uint64(r + 1)
		name := fmt.Sprint("o", r%2)
		op := testOp{kind: opWrite, name: name, off: 0, data: pattern(byte(r), chunk)}
		e := op.encode()
		b := s.NewBatch()
		if err := b.AppendPlaced(pg1, index, [][]byte{e}, []Place{{Entry: 0, Object: name, Offset: 0, Lo: op.headerLen(), Hi: len(e)}}); err != nil {
			t.Fatal(err)
		}
		if err := b.Write(pg1, name, 0, op.data, index); err != nil {
			t.Fatal(err)
		}
		if err := b.SetApplyState(pg1, []byte{byte(index)}); err != nil {
			t.Fatal(err)
		}
		if err := b.CompactLog(pg1, index); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		want[name] = op.data
		for n, w := range want {
			if got := mustRead(t, s, pg1, n, 0, chunk); !bytes.Equal(got, w) {
				t.Fatalf("round %d: %s reads back wrong at byte %d", r, n, firstDiff(got, w))
			}
		}
	}
	close(stop)
	if err := <-ckpt; err != nil {
		t.Fatal(err)
	}
	if s.stats.reclaimed.Load() == 0 || s.stats.placed.Load() == 0 {
		t.Fatalf("reclaimed %d blocks, placed %d writes: the test did not exercise reclaim beside placements",
			s.stats.reclaimed.Load(), s.stats.placed.Load())
	}
	s = reopen(t, s)
	for n, w := range want {
		if got := mustRead(t, s, pg1, n, 0, chunk); !bytes.Equal(got, w) {
			t.Fatalf("after reopen: %s reads back wrong at byte %d", n, firstDiff(got, w))
		}
	}
}
