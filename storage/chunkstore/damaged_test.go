package chunkstore

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// appendPlaced logs op as a placed entry at index of pg1 and commits.
func appendPlaced(tb testing.TB, s *Store, index uint64, op testOp) []byte {
	tb.Helper()
	e := op.encode()
	b := s.NewBatch()
	defer b.Discard()
	if err := b.AppendPlaced(pg1, index, [][]byte{e}, []Place{{Entry: 0, Object: op.name, Offset: op.off, Lo: op.headerLen(), Hi: len(e)}}); err != nil {
		tb.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		tb.Fatal(err)
	}
	return e
}

// checkHead checks that EntryHeads gives e's bytes, less its data, for the
// entry at index of pg1.
func checkHead(tb testing.TB, s *Store, index uint64, e []byte, op testOp) {
	tb.Helper()
	heads, err := s.EntryHeads(pg1, index, index+1)
	if err != nil || len(heads) != 1 {
		tb.Fatalf("EntryHeads = %d heads, %v", len(heads), err)
	}
	h := heads[0]
	if h.Cut != op.headerLen() || h.Data != len(op.data) || !bytes.Equal(slices.Concat(h.Rest[:h.Cut], op.data, h.Rest[h.Cut:]), e) {
		tb.Fatalf("head: cut %d, data %d, rest %d bytes; want cut %d, data %d and the entry back with its data",
			h.Cut, h.Data, len(h.Rest), op.headerLen(), len(op.data))
	}
}

// TestDamagedPlacedEntry: a placed entry whose slot is damaged on disk
// (after it was logged) fails Entries with ErrDamagedEntry, not the store:
// its head is still read, ApplyPlaced replays it by flipping (the damaged
// block stays detectable, the others read back), an in-place write over
// its slot keeps a lost head in the log instead of refusing, and the lost
// head survives a restart and replays again.
func TestDamagedPlacedEntry(t *testing.T) {
	s := openStore(t, testConfig(t))
	bs := int64(s.cfg.BlockSize)
	data := pattern(7, int(4*bs))
	op := testOp{kind: opWrite, name: "o", off: 0, data: data}
	e := appendPlaced(t, s, 1, op)
	if s.stats.placed.Load() != 1 {
		t.Fatalf("placed %d entries, want 1", s.stats.placed.Load())
	}
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, data, 1) })

	// Damage block 1 in the slot the entry went to (the current one).
	path := objectFile(s, pg1, "o")
	off := blockOff(t, s, "o", 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage(t, path, off+10, 2)
	s = openStore(t, s.cfg)

	_, err := s.Entries(pg1, 1, 2, 1<<30)
	if !errors.Is(err, ErrDamagedEntry) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Entries over a damaged slot: %v; want ErrDamagedEntry (and ErrCorrupt)", err)
	}
	checkHead(t, s, 1, e, op)

	// The replay after the restart applies it without its data.
	s.Recover(pg1, 1)
	commit(t, s, func(b *Batch) error { return b.ApplyPlaced(pg1, "o", 0, int64(len(data)), 1) })
	if got := mustRead(t, s, pg1, "o", 0, int(bs)); !bytes.Equal(got, data[:bs]) {
		t.Fatal("block 0 reads wrong after the replay")
	}
	wantCorruptBlock(t, s.Read(pg1, "o", bs, make([]byte, bs)), 1)

	// ApplyPlaced of what is not that placed write is refused at Commit.
	for _, bad := range []struct{ off, n int64 }{{0, bs}, {bs, 3 * bs}} {
		b := s.NewBatch()
		if err := b.ApplyPlaced(pg1, "o", bad.off, bad.n, 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); !errors.Is(err, ErrDamagedEntry) {
			t.Fatalf("ApplyPlaced(%d, %d) of a write of %d at 0: Commit = %v, want ErrDamagedEntry", bad.off, bad.n, len(data), err)
		}
	}

	// An in-place write over the damaged slot converts the placement:
	// the log keeps a lost head, and the write repairs block 1.
	fix := pattern(9, int(bs))
	op2 := testOp{kind: opWrite, name: "o", off: bs, data: fix}
	commit(t, s, func(b *Batch) error {
		if err := b.AppendEntries(pg1, 2, [][]byte{op2.encode()}); err != nil {
			return err
		}
		return b.Write(pg1, "o", bs, fix, 2)
	})
	if s.stats.lost.Load() != 1 {
		t.Fatalf("lost %d placed entries, want 1", s.stats.lost.Load())
	}
	want := slices.Concat(data[:bs], fix, data[2*bs:])
	checkObject(t, s, pg1, "o", want, 2)
	for pass := range 2 {
		if _, err := s.Entries(pg1, 1, 2, 1<<30); !errors.Is(err, ErrDamagedEntry) {
			t.Fatalf("pass %d: Entries of a lost head: %v; want ErrDamagedEntry", pass, err)
		}
		checkHead(t, s, 1, e, op)
		if got, err := s.Entries(pg1, 2, 3, 1<<30); err != nil || !bytes.Equal(got[0], op2.encode()) {
			t.Fatalf("pass %d: the entry after the lost one: %v", pass, err)
		}
		// Replaying both (the apply state was never checkpointed here)
		// gives the same object.
		s = reopen(t, s)
		s.Recover(pg1, 2)
		commit(t, s, func(b *Batch) error {
			if err := b.ApplyPlaced(pg1, "o", 0, int64(len(data)), 1); err != nil {
				return err
			}
			return b.Write(pg1, "o", bs, fix, 2)
		})
		checkObject(t, s, pg1, "o", want, 2)
	}
}

// TestLostPlacementKeepsItsSlots: a placed entry not applied yet, damaged,
// then converted by an earlier entry's in-place write over its blocks,
// keeps its (non-current) slots claimed: its replay may still flip them
// in, so no later write may be placed there meanwhile. Its data-less
// apply then flips them in and the blocks read as damaged or as written.
func TestLostPlacementKeepsItsSlots(t *testing.T) {
	s := openStore(t, testConfig(t))
	bs := int64(s.cfg.BlockSize)
	first := testOp{kind: opWrite, name: "o", off: 0, data: pattern(1, int(4*bs))}
	fix := testOp{kind: opWrite, name: "o", off: 2 * bs, data: pattern(2, int(bs))}
	commit(t, s, func(b *Batch) error {
		if err := b.AppendEntries(pg1, 1, [][]byte{first.encode(), fix.encode()}); err != nil {
			return err
		}
		return b.Write(pg1, "o", 0, first.data, 1)
	})
	data := pattern(7, int(4*bs))
	op := testOp{kind: opWrite, name: "o", off: 0, data: data}
	appendPlaced(t, s, 3, op) // placed into the non-current slots, not applied
	m, _, err := s.cachedMeta(loc{pg: pg1, object: "o", block: -1})
	if err != nil {
		t.Fatal(err)
	}
	placedSlot := 1 - m.slot(2)
	path := objectFile(s, pg1, "o")
	off := s.blockIO(newObjID(pg1, "o"), nil, loc{}).dataOff(2, placedSlot)
	damage(t, path, off+5, 1)

	// Entry 2, before it in the log, writes block 2 in place: the
	// placement is converted, and found damaged.
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 2*bs, fix.data, 2) })
	if s.stats.lost.Load() != 1 {
		t.Fatalf("lost %d placed entries, want 1", s.stats.lost.Load())
	}
	s.placeMu.Lock()
	free := s.slotUse(newObjID(pg1, "o")).free(2, placedSlot)
	s.placeMu.Unlock()
	if free {
		t.Fatal("the lost placement's slot is free for another placed write")
	}
	for pass := range 2 {
		commit(t, s, func(b *Batch) error { return b.ApplyPlaced(pg1, "o", 0, int64(len(data)), 3) })
		if got := mustRead(t, s, pg1, "o", 0, int(bs)); !bytes.Equal(got, data[:bs]) {
			t.Fatalf("pass %d: block 0 reads wrong after the flip", pass)
		}
		wantCorruptBlock(t, s.Read(pg1, "o", 2*bs, make([]byte, bs)), 2)
		s = reopen(t, s)
		s.Recover(pg1, 3)
	}
}
