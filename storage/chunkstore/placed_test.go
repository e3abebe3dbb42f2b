package chunkstore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// placedEntry builds an entry of head + data + tail with some all-zero
// blocks in the data.
func placedEntry(rng *rand.Rand, head, blocks, tail int, bs int64) ([]byte, int, int) {
	e := make([]byte, head+blocks*int(bs)+tail)
	for i := range e {
		e[i] = byte(rng.Uint32())
	}
	for k := 0; k < blocks; k++ {
		if rng.IntN(4) == 0 {
			clear(e[head+k*int(bs) : head+(k+1)*int(bs)])
		}
	}
	return e, head, head + blocks*int(bs)
}

// TestPlacedRoundTrip: an entry placed into slots, its record encoded and
// decoded, rebuilds to the same bytes; the slots' checksums are the ones a
// flip would make current, so reading the blocks as the object reads them
// back the data.
func TestPlacedRoundTrip(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 5))
		x := newSlotFixture(t)
		bs := x.b.bs
		blocks := 1 + rng.IntN(40)
		entry, lo, hi := placedEntry(rng, rng.IntN(300), blocks, rng.IntN(300), bs)
		off := bs * rng.Int64N(8)
		choice := map[int64]int{}
		r, data, err := x.b.placeEntry(entry, lo, hi, off, func(i int64) int {
			choice[i] = rng.IntN(2)
			return choice[i]
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.writeSlots(x.b, data); err != nil {
			t.Fatal(err)
		}
		enc := r.encode()
		d, err := decodePlaced(enc, bs)
		if err != nil {
			t.Fatalf("seed %d: decode: %v", seed, err)
		}
		if !bytes.Equal(d.encode(), enc) {
			t.Fatalf("seed %d: decode/encode changed the record", seed)
		}
		if len(enc) >= len(entry) && blocks > 2 {
			t.Fatalf("seed %d: record of %d bytes for an entry of %d", seed, len(enc), len(entry))
		}
		got, err := d.rebuild(x.b)
		if err != nil {
			t.Fatalf("seed %d: rebuild: %v", seed, err)
		}
		if !bytes.Equal(got, entry) {
			t.Fatalf("seed %d: rebuilt entry differs", seed)
		}
		// Flip the object to the placed blocks, as applying will: the
		// object then reads the data.
		x.m.resize(off+int64(len(data)), bs)
		for _, run := range d.slotRuns(bs) {
			for i := run.lo; i < run.hi; i++ {
				x.m.set(i)
				x.m.setSlot(i, run.slot)
			}
		}
		want := make([]byte, off+int64(len(data)))
		copy(want[off:], data)
		x.check(want)
	}
}

// TestPlacedDamageIsFound: a changed byte in a placed slot fails the
// rebuild with the block's corruption error.
func TestPlacedDamageIsFound(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	x := newSlotFixture(t)
	bs := x.b.bs
	entry := make([]byte, 10+4*bs)
	for i := range entry {
		entry[i] = byte(rng.Uint32()) | 1
	}
	r, data, err := x.b.placeEntry(entry, 10, int(10+4*bs), 0, func(i int64) int { return int(i % 2) })
	if err != nil {
		t.Fatal(err)
	}
	if err := r.writeSlots(x.b, data); err != nil {
		t.Fatal(err)
	}
	if _, err := x.b.f.WriteAt([]byte{0}, x.b.dataOff(3, 1)+100); err != nil {
		t.Fatal(err)
	}
	_, err = r.rebuild(x.b)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Block != 3 {
		t.Fatalf("rebuild over a damaged slot: %v, want corruption at block 3", err)
	}
}

// TestPlaceEntryRefusesUnaligned: only whole blocks at aligned offsets are
// placed.
func TestPlaceEntryRefusesUnaligned(t *testing.T) {
	b := fileless(newObjID(PG{1, 1}, "o"))
	e := make([]byte, 3*4096)
	for _, c := range []struct {
		lo, hi int
		off    int64
	}{{0, 4095, 0}, {0, 4096, 512}, {1, 4097, 4096 * 10000}, {0, 4096, MaxObjectSize}, {5, 4, 0}} {
		if _, _, err := b.placeEntry(e, c.lo, c.hi, c.off, func(int64) int { return 0 }); !errors.Is(err, ErrInvalid) {
			t.Errorf("placeEntry(%d, %d, off %d): %v, want ErrInvalid", c.lo, c.hi, c.off, err)
		}
	}
}

// FuzzDecodePlaced: no input makes the decoder panic, and whatever it
// accepts encodes back to the same bytes.
func FuzzDecodePlaced(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 1))
	entry, lo, hi := placedEntry(rng, 20, 3, 5, 4096)
	r, _, err := fileless(newObjID(PG{1, 1}, "obj")).placeEntry(entry, lo, hi, 8192, func(i int64) int { return int(i % 2) })
	if err != nil {
		f.Fatal(err)
	}
	f.Add(r.encode())
	f.Add([]byte{placedVersion})
	f.Fuzz(func(t *testing.T, p []byte) {
		d, err := decodePlaced(p, 4096)
		if err != nil {
			return
		}
		if !bytes.Equal(d.encode(), p) {
			t.Fatalf("accepted record does not encode back to its bytes")
		}
	})
}

// TestFlipAgainstNaive: placed writes (into the slots not current, then
// flipped) mixed with in-place writes and zeroing read like a plain byte
// slice, and flip reports exactly the slots that blocks left.
func TestFlipAgainstNaive(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		x := newSlotFixture(t)
		bs := x.b.bs
		var want []byte
		grow := func(end int64) {
			if int(end) > len(want) {
				want = append(want, make([]byte, int(end)-len(want))...)
			}
		}
		for step := 0; step < 150; step++ {
			switch rng.IntN(3) {
			case 0: // placed
				blocks := 1 + rng.IntN(6)
				entry, lo, hi := placedEntry(rng, 7, blocks, 3, bs)
				off := bs * rng.Int64N(20)
				before := x.m.clone()
				r, data, err := x.b.placeEntry(entry, lo, hi, off, func(i int64) int { return 1 - x.m.slot(i) })
				if err != nil {
					t.Fatal(err)
				}
				if err := r.writeSlots(x.b, data); err != nil {
					t.Fatal(err)
				}
				left := x.b.flip(&x.m, r)
				grow(off + int64(len(data)))
				copy(want[off:], data)
				// What left: every block stored before whose slot changed
				// or that became a hole, in the slot it was in.
				var wantLeft []slotRun
				for i := off / bs; i < off/bs+int64(blocks); i++ {
					if before.has(i) && (!x.m.has(i) || x.m.slot(i) != before.slot(i)) {
						if l := len(wantLeft); l > 0 && wantLeft[l-1].hi == i && wantLeft[l-1].slot == before.slot(i) {
							wantLeft[l-1].hi++
						} else {
							wantLeft = append(wantLeft, slotRun{i, i + 1, before.slot(i)})
						}
					}
				}
				if len(left) != len(wantLeft) || (len(left) > 0 && !equalRuns(left, wantLeft)) {
					t.Fatalf("seed %d step %d: left %v, want %v", seed, step, left, wantLeft)
				}
			case 1: // in place
				off, n := rng.Int64N(20*bs), rng.Int64N(3*bs)+1
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				x.write(off, p)
				grow(off + n)
				copy(want[off:], p)
			case 2:
				off, n := rng.Int64N(20*bs), rng.Int64N(4*bs)+1
				if err := x.b.zeroRange(&x.m, off, n); err != nil {
					t.Fatal(err)
				}
				grow(off + n)
				clear(want[off : off+n])
			}
			x.check(want)
		}
	}
}

// fileless is a blockIO of 4 KiB blocks for what touches no file.
func fileless(id objID) *blockIO {
	return &blockIO{id: id, bs: 4096, table: tableSize(4096), zero: make([]byte, 4096)}
}

func equalRuns(a, b []slotRun) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
