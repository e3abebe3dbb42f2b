package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestStableMod(t *testing.T) {
	tests := []struct {
		x, b, bmask, want uint32
	}{
		{0, 1, 0, 0},
		{0xffffffff, 1, 0, 0},
		{5, 8, 7, 5},
		{13, 8, 7, 5},
		{13, 12, 15, 5},  // 13 >= 12: drop the top mask bit
		{11, 12, 15, 11}, // below b: kept
		{12, 12, 15, 4},
		{15, 12, 15, 7},
		{0x1234_5678, 12, 15, 8},
		{0x1234_567b, 12, 15, 11},
		{0x1234_567c, 12, 15, 4},
		{0x1234_567f, 12, 15, 7},
		{100, 100, 127, 36},
		{99, 100, 127, 99},
		{1000, 4096, 4095, 1000},
		{4097, 4096, 4095, 1},
		{0xffffffff, 0x80000001, 0xffffffff, 0x7fffffff},
	}
	for _, tt := range tests {
		if got := StableMod(tt.x, tt.b, tt.bmask); got != tt.want {
			t.Errorf("StableMod(%#x, %d, %#x) = %d, want %d", tt.x, tt.b, tt.bmask, got, tt.want)
		}
	}
}

func TestPGMask(t *testing.T) {
	tests := []struct{ b, want uint32 }{
		{0, 0}, {1, 0}, {2, 1}, {3, 3}, {4, 3}, {5, 7}, {12, 15}, {4096, 4095}, {4097, 8191},
		{1 << 31, 1<<31 - 1}, {1<<31 + 1, 0xffffffff}, {0xffffffff, 0xffffffff},
	}
	for _, tt := range tests {
		if got := pgMask(tt.b); got != tt.want {
			t.Errorf("pgMask(%d) = %#x, want %#x", tt.b, got, tt.want)
		}
	}
}

// TestStableModSplits checks the reason StableMod exists: growing pg_num
// from b to b+1 leaves every value in its PG except those moving to the new
// PG b, and those all come from the one PG b splits from.
func TestStableModSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for b := uint32(1); b < 300; b++ {
		parent := b - (pgMask(b+1)+1)/2
		for range 2000 {
			x := rng.Uint32()
			before, after := StableMod(x, b, pgMask(b)), StableMod(x, b+1, pgMask(b+1))
			if before >= b || after > b {
				t.Fatalf("x=%#x: StableMod out of range: %d of %d, %d of %d", x, before, b, after, b+1)
			}
			if after != before && (after != b || before != parent) {
				t.Fatalf("x=%#x: pg_num %d -> %d moved it from PG %d to PG %d; only PG %d may split into PG %d",
					x, b, b+1, before, after, parent, b)
			}
		}
	}
}

// TestPGOfGolden pins the object-name hash. It is part of the placement
// contract: if this fails, every object of every cluster changes PG.
func TestPGOfGolden(t *testing.T) {
	tests := []struct {
		name   string
		hash   uint32
		pg8192 uint32
		pg100  uint32
	}{
		{"", 0xe8601c7f, 7295, 63},
		{"a", 0xe275137a, 4986, 58},
		{"rbd_data.1", 0x9a74821e, 542, 30},
		{"rbd_header.abcdef0123456789", 0x9050c1fc, 508, 60},
		{"image/0000000000000042", 0xb16c6843, 2115, 67},
	}
	for _, tt := range tests {
		if got := hashName(tt.name); got != tt.hash {
			t.Errorf("hashName(%q) = %#08x, want %#08x", tt.name, got, tt.hash)
		}
		if got := PGOf(tt.name, 8192); got != tt.pg8192 {
			t.Errorf("PGOf(%q, 8192) = %d, want %d", tt.name, got, tt.pg8192)
		}
		if got := PGOf(tt.name, 100); got != tt.pg100 {
			t.Errorf("PGOf(%q, 100) = %d, want %d", tt.name, got, tt.pg100)
		}
	}
	if got := PGOf("anything", 0); got != 0 {
		t.Errorf("PGOf(_, 0) = %d, want 0", got)
	}
}

// TestHashNameSpread is a smoke test of hash quality where placement needs
// it: the low bits StableMod keeps. 200,000 similar names over 256 PGs must
// pass a chi-square test of uniformity (255 degrees of freedom: mean 255,
// standard deviation 22.6; allowed within 5 deviations), and flipping one
// input bit must flip about half the output bits.
func TestHashNameSpread(t *testing.T) {
	const names, pgs = 200_000, 256
	var counts [pgs]int
	for i := range names {
		counts[PGOf(fmt.Sprintf("obj%d", i), pgs)]++
	}
	chi2 := 0.0
	for _, n := range counts {
		d := float64(n) - names/pgs
		chi2 += d * d / (names / pgs)
	}
	t.Logf("chi-square %.1f", chi2)
	if chi2 < 255-5*22.6 || chi2 > 255+5*22.6 {
		t.Errorf("names over %d PGs: chi-square %.1f, want 255 ± 113", pgs, chi2)
	}
	flips := 0
	const trials = 10_000
	for i := range trials {
		b := []byte(fmt.Sprintf("rbd_data.%08d", i))
		h := hashName(string(b))
		b[i%len(b)] ^= 1 << (i % 8)
		flips += popcount(h ^ hashName(string(b)))
	}
	avg := float64(flips) / trials
	t.Logf("one flipped input bit flips %.2f output bits on average", avg)
	if avg < 15.5 || avg > 16.5 {
		t.Errorf("one flipped input bit flips %.2f of 32 output bits on average, want about 16", avg)
	}
}

func popcount(x uint32) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}
