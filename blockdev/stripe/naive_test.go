package stripe

import (
	"fmt"
	"slices"
	"testing"
	"testing/quick"
)

// place is where one image byte lives.
type place struct {
	obj uint64
	off int64
}

// naive lays out the first n image bytes by filling objects the way the
// package doc draws it: set after set, stripe (row) after stripe, object
// after object within a row, one stripe unit each, byte by byte. It shares
// no arithmetic with the package.
func naive(l Layout, n int64) []place {
	out := make([]place, 0, n)
	for set := uint64(0); ; set++ {
		for row := int64(0); row < l.ObjectSize/l.StripeUnit; row++ {
			for col := int64(0); col < l.StripeCount; col++ {
				for b := int64(0); b < l.StripeUnit; b++ {
					if int64(len(out)) == n {
						return out
					}
					out = append(out, place{set*uint64(l.StripeCount) + uint64(col), row*l.StripeUnit + b})
				}
			}
		}
	}
}

// tiny builds a small layout from arbitrary numbers, bypassing Validate's
// lower bounds so that every shape (many sets, partial sets, units of one
// byte) appears within a few hundred bytes. The arithmetic does not depend
// on the bounds.
func tiny(osLog, suLog, sc uint8) Layout {
	os := int64(1) << (osLog % 6)
	su := int64(1) << (int64(suLog%6) % (int64(osLog%6) + 1))
	return Layout{ObjectSize: os, StripeUnit: su, StripeCount: int64(sc%5) + 1}
}

// checkAgainstNaive compares every function of the package with the naive
// layout for one layout, image size and range.
func checkAgainstNaive(l Layout, size, off, length int64) error {
	places := naive(l, max(size, off+length))

	// Map: expand the extents byte by byte; they must tile the buffer in
	// order, land where the naive layout puts each byte, and be maximal.
	var got []place
	for i, e := range Map(l, off, length) {
		if e.Length <= 0 || e.BufOff != int64(len(got)) {
			return fmt.Errorf("map(%d,%d) extent %d %+v: bad length or buffer offset (want buf %d)", off, length, i, e, len(got))
		}
		for b := int64(0); b < e.Length; b++ {
			got = append(got, place{e.Object, e.Offset + b})
		}
	}
	if !slices.Equal(got, places[off:off+length]) {
		return fmt.Errorf("map(%d,%d) = %v, naive %v", off, length, got, places[off:off+length])
	}
	exts := Map(l, off, length)
	for i := 1; i < len(exts); i++ {
		a, b := exts[i-1], exts[i]
		if a.Object == b.Object && a.Offset+a.Length == b.Offset {
			return fmt.Errorf("map(%d,%d): extents %d and %d could be merged: %+v %+v", off, length, i-1, i, a, b)
		}
	}

	// ToImage inverts Map byte by byte.
	for pos, p := range places {
		if got := ToImage(l, p.obj, p.off); got != int64(pos) {
			return fmt.Errorf("ToImage(%d,%d) = %d, want %d", p.obj, p.off, got, pos)
		}
	}

	// ObjectCount and ObjectLen: which objects hold bytes below size, and
	// how many (a prefix of each object).
	lens := map[uint64]int64{}
	for _, p := range places[:size] {
		if p.off != lens[p.obj] {
			return fmt.Errorf("object %d: byte at %d comes before the bytes below it: not a prefix", p.obj, p.off)
		}
		lens[p.obj]++
	}
	if got := ObjectCount(l, size); got != uint64(len(lens)) {
		return fmt.Errorf("ObjectCount(%d) = %d, want %d", size, got, len(lens))
	}
	for obj := uint64(0); obj < uint64(len(lens))+2*uint64(l.StripeCount); obj++ {
		if got := ObjectLen(l, obj, size); got != lens[obj] {
			return fmt.Errorf("ObjectLen(%d, size %d) = %d, want %d", obj, size, got, lens[obj])
		}
	}

	// ObjectRanges: the image bytes of each object's first n bytes.
	for obj, n := range lens {
		var want []int64
		for pos, p := range places {
			if p.obj == obj && p.off < n {
				want = append(want, int64(pos))
			}
		}
		var got []int64
		rs := ObjectRanges(l, obj, n)
		for i, r := range rs {
			if i > 0 && rs[i-1].End() >= r.Offset {
				return fmt.Errorf("ObjectRanges(%d,%d) = %v: not sorted and merged", obj, n, rs)
			}
			for b := r.Offset; b < r.End(); b++ {
				got = append(got, b)
			}
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("ObjectRanges(%d,%d) = %v, want bytes %v", obj, n, rs, want)
		}
	}
	return nil
}

// TestStripeQuickAgainstNaive checks Map, ToImage, ObjectCount, ObjectLen
// and ObjectRanges against the byte-by-byte layout for random small layouts.
func TestStripeQuickAgainstNaive(t *testing.T) {
	f := func(osLog, suLog, sc uint8, size, off, length uint16) bool {
		l := tiny(osLog, suLog, sc)
		err := checkAgainstNaive(l, int64(size%700), int64(off%500), int64(length%300))
		if err != nil {
			t.Logf("%v: %v", l, err)
		}
		return err == nil
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 3000}); err != nil {
		t.Fatal(err)
	}
}

// TestStripeRealLayouts runs the same comparison on valid layouts, at the
// edges of units, objects and sets.
func TestStripeRealLayouts(t *testing.T) {
	for _, l := range []Layout{
		{ObjectSize: 16 << 10, StripeUnit: 16 << 10, StripeCount: 1},
		{ObjectSize: 16 << 10, StripeUnit: 4 << 10, StripeCount: 1},
		{ObjectSize: 16 << 10, StripeUnit: 4 << 10, StripeCount: 3},
		{ObjectSize: 8 << 10, StripeUnit: 8 << 10, StripeCount: 4},
	} {
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		set, su := l.SetSize(), l.StripeUnit
		for _, size := range []int64{0, 1, su - 1, su, su + 1, set - 1, set, set + su + 7, 2*set + 1} {
			for _, r := range [][2]int64{{0, size}, {su - 1, 2}, {set - 1, 3}, {7, set + su}} {
				if err := checkAgainstNaive(l, size, r[0], r[1]); err != nil {
					t.Fatalf("%v: %v", l, err)
				}
			}
		}
	}
}

// FuzzStripeMap is the same comparison under the fuzzer
// (go test -fuzz FuzzStripeMap ./blockdev/stripe).
func FuzzStripeMap(f *testing.F) {
	f.Add(uint8(2), uint8(1), uint8(2), uint16(100), uint16(3), uint16(40))
	f.Add(uint8(5), uint8(5), uint8(0), uint16(64), uint16(0), uint16(64))
	f.Add(uint8(4), uint8(0), uint8(4), uint16(333), uint16(17), uint16(299))
	f.Fuzz(func(t *testing.T, osLog, suLog, sc uint8, size, off, length uint16) {
		l := tiny(osLog, suLog, sc)
		if err := checkAgainstNaive(l, int64(size%700), int64(off%500), int64(length%300)); err != nil {
			t.Fatalf("%v: %v", l, err)
		}
	})
}
