package placement

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLog2Fixed checks the integer logarithm against math.Log2 (which is
// accurate to far better than the 2^-40 allowed here) at the edges and at
// random points of the range drawStraw uses.
func TestLog2Fixed(t *testing.T) {
	xs := []uint64{1, 2, 3, 255, 256, 257, 65535, 65536, 1 << 31, 1<<32 - 1, 1 << 32, 1<<63 + 12345, math.MaxUint64}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		xs = append(xs, uint64(rng.Uint32())+1)
	}
	for _, x := range xs {
		got := float64(log2Fixed(x)) / (1 << logFracBits)
		if want := math.Log2(float64(x)); math.Abs(got-want) > 1.0/(1<<40) {
			t.Errorf("log2Fixed(%d) = %.15f, want %.15f", x, got, want)
		}
	}
	for _, p := range []uint{0, 1, 8, 16, 32, 63} {
		if got := log2Fixed(1 << p); got != uint64(p)<<logFracBits {
			t.Errorf("log2Fixed(2^%d) = %#x, want exactly %d", p, got, p)
		}
	}
}

func TestFixedWeight(t *testing.T) {
	tests := []struct {
		w    float64
		want uint64
	}{
		{0, 0}, {-1, 0}, {math.NaN(), 0}, {math.Inf(-1), 0},
		{1e-12, 1}, // positive never rounds to "never chosen"
		{1, 1 << 16}, {2, 2 << 16}, {0.5, 1 << 15}, {3.638, 238420},
		{1 << 39, 1 << 55}, {1 << 40, maxWeight}, {1e300, maxWeight}, {math.Inf(1), maxWeight},
	}
	for _, tt := range tests {
		if got := fixedWeight(tt.w); got != tt.want {
			t.Errorf("fixedWeight(%v) = %d, want %d", tt.w, got, tt.want)
		}
	}
}

// TestStrawBeats checks the integer comparison against the straw2 formula
// in floating point, away from near-ties where float rounding decides.
func TestStrawBeats(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	weights := []float64{0.001, 0.5, 1, 2, 3.638, 7.277, 1000}
	draw := func(u uint32, w float64) float64 { return math.Log((float64(u)+1)/(1<<32)) / w }
	for range 100_000 {
		ua, ub := rng.Uint32(), rng.Uint32()
		wa, wb := weights[rng.IntN(len(weights))], weights[rng.IntN(len(weights))]
		a := straw{cost: 32<<logFracBits - log2Fixed(uint64(ua)+1), weight: fixedWeight(wa)}
		b := straw{cost: 32<<logFracBits - log2Fixed(uint64(ub)+1), weight: fixedWeight(wb)}
		da, db := draw(ua, wa), draw(ub, wb)
		if math.Abs(da-db) <= 1e-9*math.Max(math.Abs(da), math.Abs(db)) {
			continue
		}
		if a.beats(b) != (da > db) {
			t.Fatalf("u=%d w=%v (draw %v) against u=%d w=%v (draw %v): beats = %v", ua, wa, da, ub, wb, db, a.beats(b))
		}
	}
	// Exact ties in real arithmetic are exact ties here: u+1 = 2^16 at
	// weight 1 and u+1 = 1 at weight 2 both draw -16 ln 2.
	a := straw{cost: 32<<logFracBits - log2Fixed(1<<16), weight: fixedWeight(1)}
	b := straw{cost: 32<<logFracBits - log2Fixed(1<<0), weight: fixedWeight(2)}
	if a.beats(b) || b.beats(a) {
		t.Errorf("straws with equal draws compare unequal: %+v, %+v", a, b)
	}
}
