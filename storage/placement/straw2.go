package placement

import (
	"math"
	"math/bits"
)

// Straw2, in integers.
//
// Each eligible device draws a straw for a PG: u = drawHash(pg, pool, id),
// draw = ln((u+1)/2^32) / weight, and the highest draw wins. -ln of a uniform
// variable is exponentially distributed, so -draw is exponential with rate
// weight and a device wins with probability weight / (sum of weights);
// changing one device's weight (or adding or removing a device) changes
// only that device's draws, never the order of the others.
//
// The draw is evaluated exactly in integers instead of float64:
//   - cost = -log2((u+1)/2^32) in fixed point with logFracBits fractional
//     bits (log2 instead of ln: a constant factor, same order);
//   - the weight in fixed point with weightFracBits fractional bits;
//   - draw a beats draw b iff cost_a/weight_a < cost_b/weight_b, compared as
//     cost_a*weight_b < cost_b*weight_a in 128 bits.
//
// Why not math.Log: on amd64 and s390x it is assembly, elsewhere pure Go
// that the compiler may fuse into FMA instructions, so results can differ in
// the last bit between architectures. Straws tie exactly in real arithmetic
// for simple weight ratios (u+1 = 2^16 at weight 1 against u+1 = 1 at
// weight 2, say), and a one-bit difference there would place the same PG
// differently on two machines. Integers give every machine the same answer;
// like the hashes, this is part of the placement contract.
//
// u uses all 32 hash bits (Ceph keeps 16): among hundreds of devices, 16-bit
// draws tie often enough at the top for the id tie-break to skew shares.

const (
	// weightFracBits is the fixed-point precision of device weights: weights
	// closer than 2^-16 are the same weight to placement.
	weightFracBits = 16
	// maxWeight caps fixed-point weights (2^40 in Device.Weight units) so
	// that cost*weight fits in 128 bits with room to spare.
	maxWeight uint64 = 1 << 56
	// logFracBits is the fixed-point precision of cost. Adjacent u near
	// 2^32 differ by about 2^-32/ln 2 in log2, far above 2^-44.
	logFracBits = 44
)

// straw is one device's draw for one PG. The zero straw is never compared:
// devices with weight 0 are filtered out before drawing.
type straw struct {
	cost   uint64 // -log2((u+1)/2^32), logFracBits fractional bits, < 2^49
	weight uint64 // fixedWeight(Device.Weight), in [1, maxWeight]
}

// drawStraw draws device id's straw for pg of pool; w is a fixed-point
// weight from fixedWeight, > 0.
func drawStraw(pg, pool uint32, id int32, w uint64) straw {
	u := drawHash(pg, pool, id)
	return straw{cost: 32<<logFracBits - log2Fixed(uint64(u)+1), weight: w}
}

// beats reports whether straw a is strictly longer (a higher draw) than b.
func (a straw) beats(b straw) bool {
	ahi, alo := bits.Mul64(a.cost, b.weight)
	bhi, blo := bits.Mul64(b.cost, a.weight)
	return ahi < bhi || (ahi == bhi && alo < blo)
}

// fixedWeight converts a device weight to fixed point. It returns 0 (never
// chosen) for weights <= 0 and NaN, at least 1 for any positive weight, and
// at most maxWeight.
func fixedWeight(w float64) uint64 {
	if !(w > 0) {
		return 0
	}
	if w >= float64(maxWeight>>weightFracBits) {
		return maxWeight
	}
	f := uint64(math.Round(w * (1 << weightFracBits)))
	if f == 0 {
		return 1
	}
	return f
}

// log2Fixed returns log2(x) for x >= 1 with logFracBits fractional bits,
// rounded down (to within a unit in the last place). The integer part is the
// position of the top bit; the fraction comes one bit per step from
// repeatedly squaring the mantissa, held with 62 fractional bits: when the
// square reaches 2, that bit of the logarithm is 1 and the mantissa is
// halved.
func log2Fixed(x uint64) uint64 {
	ip := bits.Len64(x) - 1
	var m uint64 // x / 2^ip in [1, 2), 62 fractional bits
	if ip <= 62 {
		m = x << (62 - ip)
	} else {
		m = x >> (ip - 62)
	}
	r := uint64(ip) << logFracBits
	for k := logFracBits - 1; k >= 0; k-- {
		hi, lo := bits.Mul64(m, m)
		m = hi<<2 | lo>>62 // m*m in [1, 4), back to 62 fractional bits
		top := m >> 63     // 1 when m*m >= 2; branch-free, the bit is random
		m >>= top
		r |= top << k
	}
	return r
}
