package nbd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestDescriptors(t *testing.T) {
	const H, Z = ExtentHole, ExtentZero
	tests := []struct {
		name   string
		ext    []Extent
		off, n int64
		reqOne bool
		align  int64
		want   string
		bad    bool
	}{
		{"one", []Extent{{0, 4096, H | Z}}, 0, 4096, false, 512, "[{4096 3}]", false},
		{"clipped to range", []Extent{{0, 1 << 20, 0}}, 4096, 4096, false, 512, "[{4096 0}]", false},
		{"merged", []Extent{{0, 512, Z}, {512, 512, Z}, {1024, 512, 0}}, 0, 1536, false, 512, "[{1024 2} {512 0}]", false},
		{"starts before off", []Extent{{0, 2048, 0}, {2048, 2048, H}}, 1024, 3072, false, 512, "[{1024 0} {2048 1}]", false},
		{"req one", []Extent{{0, 512, 0}, {512, 512, H}}, 0, 1024, true, 512, "[{512 0}]", false},
		{"gap stops", []Extent{{0, 512, 0}, {1024, 512, H}}, 0, 1536, false, 512, "[{512 0}]", false},
		{"covers less", []Extent{{0, 512, 0}}, 0, 4096, false, 512, "[{512 0}]", false},
		{"unknown flags dropped", []Extent{{0, 512, 0xf0 | H}}, 0, 512, false, 512, "[{512 1}]", false},
		{"unaligned inner boundary cut", []Extent{{0, 1024, 0}, {1024, 100, H}, {1124, 924, 0}}, 0, 2048, false, 512, "[{1024 0}]", false},
		{"unaligned first keeps aligned part", []Extent{{0, 1100, H}, {1100, 948, 0}}, 0, 2048, false, 512, "[{1024 1}]", false},
		{"unaligned tiny first becomes status 0", []Extent{{0, 100, H}, {100, 1948, 0}}, 0, 2048, false, 512, "[{512 0}]", false},
		{"unaligned end of request is fine", []Extent{{0, 100, H}}, 0, 100, false, 1, "[{100 1}]", false},
		{"no alignment needed", []Extent{{0, 100, H}, {100, 50, 0}}, 0, 150, false, 1, "[{100 1} {50 0}]", false},
		{"nothing at off", []Extent{{512, 512, 0}}, 0, 1024, false, 512, "", true},
		{"empty", nil, 0, 512, false, 512, "", true},
		{"zero length extent", []Extent{{0, 0, 0}}, 0, 512, false, 512, "", true},
		{"negative length", []Extent{{0, -5, 0}}, 0, 512, false, 512, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := descriptors(tc.ext, tc.off, tc.n, tc.reqOne, tc.align)
			if tc.bad {
				if !errors.Is(err, ErrBadExtents) {
					t.Fatalf("err %v, want ErrBadExtents", err)
				}
				return
			}
			if err != nil || fmt.Sprint(ds) != tc.want {
				t.Fatalf("got %v %v, want %s", ds, err, tc.want)
			}
		})
	}
}

// TestDescriptorsModel checks descriptors against a naive per-unit model on
// random allocation maps: the answer starts at off, stays inside the
// request, has positive aligned lengths, alternates flags, and every unit
// it describes has the flags the map gives it (or status 0).
func TestDescriptorsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const unit = 64 // model granularity; extents are multiples of it
	for iter := range 2000 {
		units := 1 + rng.IntN(64)
		var ext []Extent
		flags := make([]uint32, units)
		for pos := 0; pos < units; {
			n := 1 + rng.IntN(8)
			n = min(n, units-pos)
			f := ExtentFlags(rng.IntN(4))
			if rng.IntN(10) == 0 {
				f |= 0x100 // unknown bit
			}
			ext = append(ext, Extent{int64(pos * unit), int64(n * unit), f})
			for i := pos; i < pos+n; i++ {
				flags[i] = uint32(f) & 3
			}
			pos += n
		}
		align := []int64{1, unit, 2 * unit}[rng.IntN(3)]
		first := rng.IntN(units)
		first -= first % int(max(1, align/unit))
		last := first + 1 + rng.IntN(units-first)
		off, n := int64(first*unit), int64((last-first)*unit)
		if align > 1 && n%align != 0 {
			n -= n % align
			if n == 0 {
				continue
			}
		}
		reqOne := rng.IntN(4) == 0
		ds, err := descriptors(ext, off, n, reqOne, align)
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		if reqOne && len(ds) != 1 {
			t.Fatalf("iter %d: REQ_ONE gave %d descriptors", iter, len(ds))
		}
		pos := off
		for i, d := range ds {
			if d.length == 0 {
				t.Fatalf("iter %d: zero-length descriptor", iter)
			}
			if i > 0 && ds[i-1].flags == d.flags {
				t.Fatalf("iter %d: consecutive descriptors with flags %d", iter, d.flags)
			}
			end := pos + int64(d.length)
			if end > off+n {
				t.Fatalf("iter %d: %v reaches past the request [%d, +%d)", iter, ds, off, n)
			}
			if end != off+n && end%align != 0 {
				t.Fatalf("iter %d: boundary %d not aligned to %d", iter, end, align)
			}
			for u := pos / unit; u < (end+unit-1)/unit; u++ {
				if d.flags != 0 && flags[u] != d.flags {
					t.Fatalf("iter %d: unit %d has flags %d, descriptor says %d", iter, u, flags[u], d.flags)
				}
			}
			pos = end
		}
	}
}
