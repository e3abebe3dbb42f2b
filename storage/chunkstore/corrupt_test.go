package chunkstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// objectFile returns the path of an object's file.
func objectFile(s *Store, pg PG, name string) string {
	return filepath.Join(s.files.root, newObjID(pg, name).rel())
}

// damage inverts n bytes at off in path (written behind the store's back,
// as a failing disk would).
func damage(tb testing.TB, path string, off int64, n int) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, n)
	if _, err := f.ReadAt(p, off); err != nil {
		tb.Fatal(err)
	}
	for i := range p {
		p[i] ^= 0xff
	}
	if _, err := f.WriteAt(p, off); err != nil {
		tb.Fatal(err)
	}
}

func wantCorruptBlock(tb testing.TB, err error, block int64) {
	tb.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Block != block {
		tb.Fatalf("err = %v, want a CorruptError at block %d", err, block)
	}
}

// TestCorruptBlock: damaged block bytes, a damaged checksum and a block
// copied to the wrong place are each detected on read, name the block, and
// never reach the caller; the other blocks still read; Digest fails; a
// partial rewrite of the damaged block goes through but leaves it marked
// damaged (unreadable); a whole-block rewrite repairs it.
func TestCorruptBlock(t *testing.T) {
	bs := int64(DefaultBlockSize)
	table := tableSize(bs)
	cases := []struct {
		name   string
		damage func(tb testing.TB, path string)
	}{
		{"data", func(tb testing.TB, path string) { damage(tb, path, table+bs+100, 3) }},
		{"checksum", func(tb testing.TB, path string) { damage(tb, path, 4, 1) }},
		{"misdirected", func(tb testing.TB, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				tb.Fatal(err)
			}
			defer f.Close()
			blk := make([]byte, bs)
			if _, err := f.ReadAt(blk, table); err != nil {
				tb.Fatal(err)
			}
			if _, err := f.WriteAt(blk, table+bs); err != nil { // block 0's bytes as block 1
				tb.Fatal(err)
			}
			sum := make([]byte, 4)
			if _, err := f.ReadAt(sum, 0); err != nil {
				tb.Fatal(err)
			}
			if _, err := f.WriteAt(sum, 4); err != nil { // and its checksum
				tb.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaultConfig(t)
			s := openStore(t, cfg)
			data := pattern(5, int(3*bs))
			commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, data, 1) })
			path := objectFile(s, pg1, "o")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			c.damage(t, path)
			s = openStore(t, cfg)
			p := make([]byte, bs)
			wantCorruptBlock(t, s.Read(pg1, "o", bs, p), 1)
			for i := range p {
				if p[i] != 0 {
					t.Fatal("damaged bytes reached the caller")
				}
			}
			wantCorruptBlock(t, s.Read(pg1, "o", 0, make([]byte, 3*bs)), 1)
			for _, i := range []int64{0, 2} {
				if err := s.Read(pg1, "o", i*bs, p); err != nil || string(p) != string(data[i*bs:(i+1)*bs]) {
					t.Fatalf("block %d: %v", i, err)
				}
			}
			if _, _, _, err := s.Digest(pg1); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Digest = %v, want ErrCorrupt", err)
			}
			// A partial rewrite of the damaged block goes through (the
			// store does not stop), but the block stays unreadable, also
			// after a restart, and its neighbours keep their bytes.
			commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", bs+10, []byte("x"), 2) })
			for pass := range 2 {
				wantCorruptBlock(t, s.Read(pg1, "o", bs, p), 1)
				if err := s.Read(pg1, "o", 2*bs, p); err != nil || string(p) != string(data[2*bs:]) {
					t.Fatalf("pass %d: block 2: %v", pass, err)
				}
				if pass == 0 {
					s = reopen(t, s)
				}
			}
			// A whole-block rewrite repairs it.
			commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", bs, data[bs:2*bs], 3) })
			checkObject(t, s, pg1, "o", data, 3)
		})
	}
}

// TestRecoverToleratesTornBlock: while replaying (Recover), a partial
// rewrite of a block whose checksum does not match goes through, as a
// block torn by a crash must, and the block reads right; past the recovery
// point the write goes through too, but the block is marked damaged.
func TestRecoverToleratesTornBlock(t *testing.T) {
	bs := int64(DefaultBlockSize)
	cfg := defaultConfig(t)
	s := openStore(t, cfg)
	data := pattern(6, int(2*bs))
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, data, 1) })
	path := objectFile(s, pg1, "o")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage(t, path, 0, 1) // block 0's checksum
	s = openStore(t, cfg)
	s.Recover(pg1, 2)
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 10, []byte("abc"), 2) })
	want := append([]byte(nil), data...)
	copy(want[10:], "abc")
	checkObject(t, s, pg1, "o", want, 2)
	damage(t, path, 0, 1)
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 20, []byte("d"), 3) })
	wantCorruptBlock(t, s.Read(pg1, "o", 0, make([]byte, bs)), 0)
}

// TestReplayKeepsDamageMarked: a placed write whose slot the device
// damaged is replayed without its data (ApplyPlaced), and a later partial
// write into the damaged block is replayed too, both inside the recovery
// range where a checksum mismatch passes as a torn write. The damaged
// block must still read as corrupt afterwards, not as the damaged bytes
// under a fresh checksum, also when only the partial write is replayed
// again after a restart (the flip checkpointed), and until a whole-block
// write repairs it.
func TestReplayKeepsDamageMarked(t *testing.T) {
	s := openStore(t, testConfig(t))
	bs := int64(s.cfg.BlockSize)
	data := pattern(7, int(4*bs))
	op := testOp{kind: opWrite, name: "o", off: 0, data: data}
	appendPlaced(t, s, 1, op)
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, data, 1) })
	patch := testOp{kind: opWrite, name: "o", off: bs + 100, data: []byte("patch")}
	commit(t, s, func(b *Batch) error { return b.AppendEntries(pg1, 2, [][]byte{patch.encode()}) })
	off := blockOff(t, s, "o", 1)
	path := objectFile(s, pg1, "o")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage(t, path, off+2000, 3) // not where the patch goes
	s = openStore(t, s.cfg)

	s.Recover(pg1, 2)
	commit(t, s, func(b *Batch) error { return b.ApplyPlaced(pg1, "o", 0, int64(len(data)), 1) })
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	for pass := range 2 {
		commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", patch.off, patch.data, 2) })
		wantCorruptBlock(t, s.Read(pg1, "o", bs, make([]byte, bs)), 1)
		for _, i := range []int64{0, 2, 3} {
			if got := mustRead(t, s, pg1, "o", i*bs, int(bs)); !bytes.Equal(got, data[i*bs:(i+1)*bs]) {
				t.Fatalf("pass %d: block %d reads wrong", pass, i)
			}
		}
		s = reopen(t, s)
		s.Recover(pg1, 2) // the apply state is at 1: only the patch replays
	}
	fix := pattern(9, int(bs))
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", bs, fix, 3) })
	checkObject(t, s, pg1, "o", slices.Concat(data[:bs], fix, data[2*bs:]), 3)
}

// TestMissingObjectFile: an object whose file vanished reads as corrupt,
// not as zeros.
func TestMissingObjectFile(t *testing.T) {
	cfg := defaultConfig(t)
	s := openStore(t, cfg)
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, pattern(7, 5000), 1) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(objectFile(s, pg1, "o")); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	if err := s.Read(pg1, "o", 0, make([]byte, 10)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read = %v, want ErrCorrupt", err)
	}
}

// TestReplayNoFalseDamage (found by a review): a placed entry (index 1) is applied, then the
// device damages one of its blocks (3). A later partial write (2) into a
// different block (1) converts the entry — found damaged, so kept as a lost
// head — and writes block 1 in place, in the entry's slot. A crash replay
// re-applies 1 without its data (stand-in: ApplyPlaced) and then 2. Block 1
// was never damaged and must read as 1's data with 2's patch; block 3 may
// read as corrupt.
func TestReplayNoFalseDamage(t *testing.T) {
	s := openStore(t, testConfig(t))
	bs := int64(s.cfg.BlockSize)
	data := pattern(7, int(4*bs))
	op := testOp{kind: opWrite, name: "o", off: 0, data: data}
	appendPlaced(t, s, 1, op)
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, data, 1) })
	damage(t, objectFile(s, pg1, "o"), blockOff(t, s, "o", 3)+10, 3)
	patch := []byte("patch")
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", bs+100, patch, 2) })
	want := bytes.Clone(data)
	copy(want[bs+100:], patch)
	if got := mustRead(t, s, pg1, "o", bs, int(bs)); !bytes.Equal(got, want[bs:2*bs]) {
		t.Fatal("block 1 wrong before the replay")
	}

	s = reopen(t, s)
	s.Recover(pg1, 2) // replay 1 (stand-in) and 2
	commit(t, s, func(b *Batch) error { return b.ApplyPlaced(pg1, "o", 0, int64(len(data)), 1) })
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", bs+100, patch, 2) })
	p := make([]byte, bs)
	if err := s.Read(pg1, "o", bs, p); err != nil {
		t.Fatalf("block 1, never damaged, after the replay: %v", err)
	}
	if !bytes.Equal(p, want[bs:2*bs]) {
		t.Fatal("block 1 reads wrong after the replay")
	}
}

// TestDamageMarkSurvivesCrash (found by a review): a partial write over a
// block that fails its checksum goes through and keeps it marked damaged.
// The meta's mark reaches the disk only at a checkpoint; a crash before it
// must not leave the damaged bytes under a valid checksum (they are stored
// under its inverse), neither before nor after the write is replayed.
func TestDamageMarkSurvivesCrash(t *testing.T) {
	s := openStore(t, testConfig(t))
	bs := int64(s.cfg.BlockSize)
	data := pattern(3, int(2*bs))
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, data, 1) })
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	damage(t, objectFile(s, pg1, "o"), blockOff(t, s, "o", 1)+2000, 3)
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", bs+100, []byte("patch"), 2) })
	wantCorruptBlock(t, s.Read(pg1, "o", bs, make([]byte, bs)), 1)

	killStore(s)
	s = openStore(t, s.cfg)
	p := make([]byte, bs)
	if err := s.Read(pg1, "o", bs, p); err == nil {
		t.Errorf("after the crash, before any replay: damaged block 1 reads without error")
	}
	s.Recover(pg1, 2)
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", bs+100, []byte("patch"), 2) })
	if err := s.Read(pg1, "o", bs, p); err == nil {
		t.Errorf("after the replay: damaged block 1 reads as valid data")
	}
}
