package image

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
)

// TestImageMatchesModel runs random writes, reads, zeroes, trims and
// resizes against an image and a plain byte slice, for layouts with and
// without striping. After every step the whole image reads back as the
// slice, no object holds data past the end, and every non-zero byte lies
// in an extent reported as allocated.
func TestImageMatchesModel(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	layouts := []stripe.Layout{
		{ObjectSize: 16 << 10},
		{ObjectSize: 16 << 10, StripeUnit: 4 << 10, StripeCount: 3},
		{ObjectSize: 8 << 10, StripeUnit: 4 << 10, StripeCount: 5},
	}
	for li, l := range layouts {
		t.Run(fmt.Sprint(l), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(li), 42))
			ctx := context.Background()
			name := fmt.Sprintf("m%d", li)
			model := make([]byte, 200<<10)
			e.create(t, s, name, int64(len(model)), l)
			im := e.open(t, s, name)
			span := func() (int64, int64) {
				off := rng.Int64N(int64(len(model)))
				n := rng.Int64N(min(int64(len(model))-off, 40<<10) + 1)
				return off, n
			}
			for step := range 300 {
				var what string
				switch k := rng.IntN(10); {
				case k < 5:
					off, n := span()
					p := make([]byte, n)
					for i := range p {
						p[i] = byte(rng.IntN(255) + 1)
					}
					what = fmt.Sprintf("write %d+%d", off, n)
					if err := im.WriteAt(ctx, p, off); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					copy(model[off:], p)
				case k < 7:
					off, n := span()
					what = fmt.Sprintf("read %d+%d", off, n)
					p := make([]byte, n)
					if err := im.ReadAt(ctx, p, off); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					if !bytes.Equal(p, model[off:off+n]) {
						t.Fatalf("step %d %s: data differs", step, what)
					}
				case k < 9:
					off, n := span()
					zero := im.Zero
					what = fmt.Sprintf("zero %d+%d", off, n)
					if k == 8 {
						zero, what = im.Trim, fmt.Sprintf("trim %d+%d", off, n)
					}
					if err := zero(ctx, off, n); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					clear(model[off : off+n])
				default:
					newSize := (rng.Int64N(300<<10)/SectorSize + 1) * SectorSize
					what = fmt.Sprintf("resize %d -> %d", len(model), newSize)
					if err := im.Resize(ctx, newSize, ResizeOptions{AllowShrink: true}); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					if newSize < int64(len(model)) {
						model = model[:newSize]
					} else {
						model = append(model, make([]byte, newSize-int64(len(model)))...)
					}
				}
				if got := readAll(t, im); !bytes.Equal(got, model) {
					t.Fatalf("step %d (%s): image differs from the model at byte %d", step, what, firstDiff(got, model))
				}
				e.checkInvariants(t, im)
				checkExtents(t, im, model)
			}
			if h, err := s.Info(ctx, "rbd", name); err != nil || h.Size != int64(len(model)) {
				t.Fatalf("header after resizes: %+v, %v; want size %d", h, err, len(model))
			}
		})
	}
}

// checkExtents: the extents tile the image in order, and every non-zero
// byte of the model is in an allocated one.
func checkExtents(t *testing.T, im *Image, model []byte) {
	t.Helper()
	exts, err := im.Extents(context.Background(), 0, int64(len(model)))
	if err != nil {
		t.Fatal(err)
	}
	pos := int64(0)
	for i, x := range exts {
		if x.Offset != pos || x.Length <= 0 || (i > 0 && exts[i-1].Allocated == x.Allocated) {
			t.Fatalf("extents do not tile the image: %+v", exts)
		}
		if !x.Allocated {
			for j := x.Offset; j < x.End(); j++ {
				if model[j] != 0 {
					t.Fatalf("byte %d holds data but lies in a hole %+v", j, x)
				}
			}
		}
		pos += x.Length
	}
	if pos != int64(len(model)) {
		t.Fatalf("extents cover %d of %d bytes", pos, len(model))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
