package chunkstore

import (
	"bytes"
	"slices"
	"testing"
)

// TestCopyCarriesDamage: ReadSkippingDamage reads a whole object past its
// damaged blocks (a checksum mismatch, a block marked damaged), zeros in
// their place, and names their ranges; MarkDamaged on another store makes
// the same blocks damaged there, so a copy neither loses the damage nor
// passes zeros off as data: the copy's blocks read as corrupt, the others
// as the source's, and the marks survive a checkpoint and a crash. A whole-block write
// repairs a marked block.
func TestCopyCarriesDamage(t *testing.T) {
	src := openStore(t, testConfig(t))
	bs := int64(src.cfg.BlockSize)
	size := 5*bs + 100 // a short last block
	data := pattern(7, int(size))
	commit(t, src, func(b *Batch) error { return b.Write(pg1, "o", 0, data, 1) })
	if err := src.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	damage(t, objectFile(src, pg1, "o"), blockOff(t, src, "o", 1)+10, 2) // checksum mismatch
	damage(t, objectFile(src, pg1, "o"), blockOff(t, src, "o", 5)+10, 2) // the short last block
	// A partial write over block 2, once damaged, leaves it marked.
	damage(t, objectFile(src, pg1, "o"), blockOff(t, src, "o", 2)+10, 2)
	commit(t, src, func(b *Batch) error { return b.Write(pg1, "o", 2*bs+1, []byte("x"), 2) })

	p := make([]byte, size)
	got, err := src.ReadSkippingDamage(pg1, "o", p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{bs, 2 * bs}, {5 * bs, 100}}
	if !slices.Equal(got, want) {
		t.Fatalf("damaged ranges %v, want %v", got, want)
	}
	for _, r := range want {
		if !bytes.Equal(p[r.Off:r.Off+r.Len], zeros(int(r.Len))) {
			t.Fatalf("damaged range %v read as other than zeros", r)
		}
	}
	if !bytes.Equal(p[:bs], data[:bs]) || !bytes.Equal(p[3*bs:5*bs], data[3*bs:5*bs]) {
		t.Fatal("the undamaged blocks did not read back as written")
	}
	if _, err := src.ReadSkippingDamage(pg1, "missing", p); !errorsIs(err, ErrNotFound) {
		t.Fatalf("missing object: %v, want ErrNotFound", err)
	}

	dst := openStore(t, testConfig(t))
	commit(t, dst, func(b *Batch) error {
		if err := b.Write(pg1, "o", 0, p, 2); err != nil {
			return err
		}
		for _, r := range got {
			if err := b.MarkDamaged(pg1, "o", r.Off, r.Len, 2); err != nil {
				return err
			}
		}
		return b.Truncate(pg1, "o", size, 2)
	})
	check := func(s *Store) {
		t.Helper()
		for _, i := range []int64{1, 2, 5} {
			wantCorruptBlock(t, s.Read(pg1, "o", i*bs, make([]byte, 10)), i)
		}
		if got := mustRead(t, s, pg1, "o", 3*bs, int(2*bs)); !bytes.Equal(got, data[3*bs:5*bs]) {
			t.Fatal("the copy's undamaged blocks differ from the source's")
		}
		if got, err := s.ReadSkippingDamage(pg1, "o", make([]byte, size)); err != nil || !slices.Equal(got, want) {
			t.Fatalf("the copy's damaged ranges: %v (err %v), want %v", got, err, want)
		}
		if info, err := s.Stat(pg1, "o"); err != nil || info.Size != size {
			t.Fatalf("the copy's size: %+v, %v; want %d", info, err, size)
		}
	}
	check(dst)
	if err := dst.Checkpoint(); err != nil { // as EndInstall does
		t.Fatal(err)
	}
	killStore(dst)
	dst = openStore(t, dst.cfg)
	check(dst)

	commit(t, dst, func(b *Batch) error { return b.Write(pg1, "o", bs, data[bs:2*bs], 3) })
	if got := mustRead(t, dst, pg1, "o", bs, int(bs)); !bytes.Equal(got, data[bs:2*bs]) {
		t.Fatal("a whole-block write did not repair a block marked by MarkDamaged")
	}
}
