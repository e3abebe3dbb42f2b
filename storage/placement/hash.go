package placement

// The hashes in this file are part of tsumiki's placement contract, as much
// as an on-disk format: every client and daemon must compute the same values
// from the same inputs, on every architecture, and the values decide where
// data lives. Changing a constant or a step here moves nearly every object
// of every existing cluster to another PG and nearly every PG to other
// devices. The golden values in hash_test.go fail when that happens; never
// "fix" them without a data migration plan.
//
// Both hashes are built from one primitive, mix64, and use integer
// arithmetic only, so they are identical on every platform Go supports.

const (
	// seedName starts the object-name hash ("tsumiki1" in ASCII).
	seedName uint64 = 0x7473756d696b6931
	// seedDraw starts the straw2 draw hash ("placemnt" in ASCII).
	seedDraw uint64 = 0x706c6163656d6e74
)

// mix64 is a bijective 64-bit mixer: three xor-shift steps around two
// multiplications by odd constants. The shift amounts and multipliers are
// the widely published "Mix13" parameter set of the 64-bit MurmurHash3
// finalizer family (also the output function of SplitMix64); with them a
// flip of any input bit flips each output bit with probability close to
// one half. Being a bijection, it never merges two states.
func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// hashName hashes an object name to 32 bits. The length goes into the
// starting state; the bytes are absorbed eight at a time (little-endian,
// the last word zero-padded), each word xored into the state and mixed.
// Because mix64 is a bijection, two different names of the same length
// never collide in the 64-bit state; the result is its high 32 bits.
func hashName(s string) uint32 {
	h := mix64(seedName ^ uint64(len(s)))
	var w uint64
	n := 0
	for i := 0; i < len(s); i++ {
		w |= uint64(s[i]) << (8 * n)
		n++
		if n == 8 {
			h = mix64(h ^ w)
			w, n = 0, 0
		}
	}
	h = mix64(h ^ w)
	return uint32(h >> 32)
}

// drawHash is the straw2 input u for device id in PG pg of pool pool: 32
// uniformly distributed bits, independent across the three inputs.
func drawHash(pg, pool uint32, id int32) uint32 {
	h := mix64(seedDraw ^ (uint64(pool)<<32 | uint64(pg)))
	h = mix64(h ^ uint64(uint32(id)))
	return uint32(h >> 32)
}
