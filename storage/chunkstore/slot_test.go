package chunkstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// slotFixture is one object file and its meta, driven through blockIO as a
// batch's apply does.
type slotFixture struct {
	t *testing.T
	b *blockIO
	m objMeta
}

func newSlotFixture(t *testing.T) *slotFixture {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "obj"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	const bs = 4096
	b := &blockIO{id: newObjID(PG{Pool: 1, Seq: 2}, "o"), f: f, l: loc{op: "test", block: -1}, bs: bs,
		table: tableSize(bs), zero: make([]byte, bs)}
	return &slotFixture{t: t, b: b}
}

// moveToSlot1 copies stored block i with its checksum to slot 1, punches
// its slot-0 bytes and records the move in the meta: what applying a
// placed write will do, done by hand.
func (x *slotFixture) moveToSlot1(i int64) {
	x.t.Helper()
	blk := make([]byte, x.b.bs)
	sum := make([]byte, 4)
	if err := preadFull(x.b.f, blk, x.b.dataOff(i, 0)); err != nil {
		x.t.Fatal(err)
	}
	if err := preadFull(x.b.f, sum, x.b.sumOff(i, 0)); err != nil {
		x.t.Fatal(err)
	}
	if _, err := x.b.f.WriteAt(blk, x.b.dataOff(i, 1)); err != nil {
		x.t.Fatal(err)
	}
	if _, err := x.b.f.WriteAt(sum, x.b.sumOff(i, 1)); err != nil {
		x.t.Fatal(err)
	}
	punch(x.b.f, x.b.dataOff(i, 0), x.b.bs)
	x.m.setSlot(i, 1)
}

func (x *slotFixture) write(off int64, p []byte) {
	x.t.Helper()
	if err := x.b.write(&x.m, off, p); err != nil {
		x.t.Fatal(err)
	}
}

func (x *slotFixture) check(want []byte) {
	x.t.Helper()
	got := make([]byte, len(want))
	if err := x.b.readRange(&x.m, 0, got); err != nil {
		x.t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		for i := range want {
			if got[i] != want[i] {
				x.t.Fatalf("byte %d (block %d): got %#x, want %#x", i, int64(i)/x.b.bs, got[i], want[i])
			}
		}
	}
	// The meta survives an encode/decode round trip with its slots.
	dm, err := decodeMeta(x.m.encode(), x.b.bs)
	if err != nil {
		x.t.Fatal(err)
	}
	for i := int64(0); i < nblocks(x.m.size, x.b.bs); i++ {
		if dm.has(i) != x.m.has(i) || dm.slot(i) != x.m.slot(i) {
			x.t.Fatalf("block %d: decoded meta has=%v slot=%d, want has=%v slot=%d", i, dm.has(i), dm.slot(i), x.m.has(i), x.m.slot(i))
		}
	}
}

// TestSlotsReadWriteDrop: blocks in slot 1 read from slot 1, are rewritten
// in place there, and dropping them clears their slot and frees it.
func TestSlotsReadWriteDrop(t *testing.T) {
	x := newSlotFixture(t)
	bs := x.b.bs
	want := make([]byte, 16*bs)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	x.write(0, want)
	for _, i := range []int64{2, 3, 4, 5, 9, 15} {
		x.moveToSlot1(i)
	}
	x.check(want) // runs 0-1, 2-5, 6-8, 9, 10-14, 15 from alternating slots

	// A partial write into a slot-1 block rewrites it there.
	copy(want[3*bs+100:], bytes.Repeat([]byte{0xab}, 200))
	x.write(3*bs+100, want[3*bs+100:3*bs+300])
	if x.m.slot(3) != 1 {
		t.Fatal("a rewrite in place moved block 3 out of slot 1")
	}
	slot0 := make([]byte, bs)
	if err := preadFull(x.b.f, slot0, x.b.dataOff(3, 0)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slot0, x.b.zero) {
		t.Fatal("the rewrite of block 3 wrote its slot 0")
	}
	// A write across slots: blocks 1 (slot 0) to 2 (slot 1), unaligned.
	copy(want[bs+5:], bytes.Repeat([]byte{0xcd}, int(bs)))
	x.write(int64(bs+5), want[bs+5:2*bs+5])
	x.check(want)

	// Zeros make block 4 a hole: out of slot 1, its slot-1 space freed.
	clear(want[4*bs : 5*bs])
	x.write(4*bs, want[4*bs:5*bs])
	if x.m.has(4) || x.m.slot(4) != 0 {
		t.Fatalf("block 4 after zeros: has=%v slot=%d", x.m.has(4), x.m.slot(4))
	}
	if err := preadFull(x.b.f, slot0, x.b.dataOff(4, 1)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slot0, x.b.zero) {
		t.Fatal("block 4's slot-1 bytes were not freed")
	}
	// A hole written again goes to slot 0.
	copy(want[4*bs:], bytes.Repeat([]byte{0x11}, int(bs)))
	x.write(4*bs, want[4*bs:5*bs])
	if x.m.slot(4) != 0 {
		t.Fatal("a written hole went to slot 1")
	}
	x.check(want)

	// Shrinking past slot-1 blocks drops them; growing reads zeros.
	if err := x.b.truncate(&x.m, 12*bs+7); err != nil {
		t.Fatal(err)
	}
	x.m.resize(16*bs, bs)
	clear(want[12*bs+7:])
	x.check(want)
	if x.m.slot(15) != 0 {
		t.Fatal("block 15 kept its slot after the truncate")
	}
}

// TestSlotsChecksumIsPerSlot: damage in slot 1 is found, and the slot-0
// checksum of a slot-1 block is not consulted.
func TestSlotsChecksumIsPerSlot(t *testing.T) {
	x := newSlotFixture(t)
	bs := x.b.bs
	want := bytes.Repeat([]byte{7}, int(4*bs))
	x.write(0, want)
	x.moveToSlot1(1)
	var bad [4]byte
	binary.BigEndian.PutUint32(bad[:], 0xdeadbeef)
	if _, err := x.b.f.WriteAt(bad[:], x.b.sumOff(1, 0)); err != nil {
		t.Fatal(err)
	}
	x.check(want)
	if _, err := x.b.f.WriteAt([]byte{8}, x.b.dataOff(1, 1)+10); err != nil {
		t.Fatal(err)
	}
	err := x.b.readRange(&x.m, 0, make([]byte, 4*bs))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Block != 1 {
		t.Fatalf("read of a damaged slot-1 block: %v, want corruption at block 1", err)
	}
}

// TestMetaSlotsEncoding: a meta with every block in slot 0 encodes as
// before slots existed; one with slot-1 blocks round-trips; a hole marked
// in slot 1 is refused.
func TestMetaSlotsEncoding(t *testing.T) {
	const bs = 4096
	m := objMeta{}
	m.resize(20*bs, bs)
	m.set(3)
	m.set(17)
	old := m.encode()
	if len(old) != metaHeaderLen+3 {
		t.Fatalf("slot-0 meta encodes in %d bytes, want %d", len(old), metaHeaderLen+3)
	}
	m.setSlot(17, 1)
	p := m.encode()
	if len(p) != metaHeaderLen+6 {
		t.Fatalf("meta with a slot-1 block encodes in %d bytes, want %d", len(p), metaHeaderLen+6)
	}
	d, err := decodeMeta(p, bs)
	if err != nil || d.slot(17) != 1 || d.slot(3) != 0 || !d.has(17) {
		t.Fatalf("decoded %+v, %v", d, err)
	}
	m.setSlot(17, 0)
	if got := m.encode(); !bytes.Equal(got, old) {
		t.Fatal("a meta back in slot 0 does not encode as the old format")
	}
	p[metaHeaderLen+3] |= 1 // slot bit of block 0, a hole
	if _, err := decodeMeta(p, bs); err == nil {
		t.Fatal("decoded a meta whose hole is in slot 1")
	}
	m.setSlot(17, 1)
	m.resize(10*bs, bs) // block 17 is gone, and its slot bit with it
	if m.anyAlt(0, 24) {
		t.Fatal("resize kept the slot bit of a dropped block")
	}
}

// TestSlotsAgainstNaive: random writes, zeroings and truncates over an
// object whose blocks are moved to slot 1 at random between them read the
// same as a plain byte slice.
func TestSlotsAgainstNaive(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		x := newSlotFixture(t)
		bs := x.b.bs
		rng := rand.New(rand.NewPCG(seed, 7))
		var want []byte
		for step := 0; step < 200; step++ {
			off := rng.Int64N(24 * bs)
			n := rng.Int64N(6*bs) + 1
			switch op := rng.IntN(10); {
			case op < 5:
				p := make([]byte, n)
				for i := range p {
					if rng.IntN(4) != 0 { // some zero runs, so some blocks become holes
						p[i] = byte(rng.Uint32())
					}
				}
				x.write(off, p)
				if end := int(off + n); end > len(want) {
					want = append(want, make([]byte, end-len(want))...)
				}
				copy(want[off:], p)
			case op < 7:
				if err := x.b.zeroRange(&x.m, off, n); err != nil {
					t.Fatal(err)
				}
				if end := int(off + n); end > len(want) {
					want = append(want, make([]byte, end-len(want))...)
				}
				clear(want[off : off+n])
			case op < 8:
				if err := x.b.truncate(&x.m, off); err != nil {
					t.Fatal(err)
				}
				if int(off) < len(want) {
					want = want[:off]
				} else {
					want = append(want, make([]byte, int(off)-len(want))...)
				}
			default:
				for i := int64(0); i < nblocks(x.m.size, bs); i++ {
					if x.m.has(i) && x.m.slot(i) == 0 && rng.IntN(2) == 0 {
						x.moveToSlot1(i)
					}
				}
			}
			if x.m.size != int64(len(want)) {
				t.Fatalf("seed %d step %d: size %d, want %d", seed, step, x.m.size, len(want))
			}
			x.check(want)
		}
	}
}
