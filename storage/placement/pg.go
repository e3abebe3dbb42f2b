package placement

import "math/bits"

// PGOf maps an object name to its placement group in [0, pgNum): the
// object-name hash (see hash.go; part of the placement contract) reduced
// with StableMod, so that growing pg_num splits PGs instead of reshuffling
// them. pgNum 0 is not a valid pool setting; PGOf returns 0 for it.
//
// PGOf is a pure function, safe for concurrent use.
func PGOf(object string, pgNum uint32) uint32 {
	if pgNum == 0 {
		return 0
	}
	return StableMod(hashName(object), pgNum, pgMask(pgNum))
}

// StableMod is Ceph's ceph_stable_mod: it reduces x to [0, b) given bmask,
// the next power of two at or above b, minus one. Values whose low bits
// (x & bmask) fall below b keep them; the others drop the top bit of the
// mask. So raising b by one only creates PG b and fills it from the single
// PG b - (bmask+1)/2 (bmask being the mask for the new b); every other value
// keeps its PG. PGs split, they do not reshuffle.
//
// bmask must be the smallest 2^k-1 with b <= bmask+1 (pgMask computes it);
// with any other mask the result may fall outside [0, b).
func StableMod(x, b, bmask uint32) uint32 {
	if x&bmask < b {
		return x & bmask
	}
	return x & (bmask >> 1)
}

// pgMask is the bmask StableMod wants for b: 2^ceil(log2 b) - 1.
func pgMask(b uint32) uint32 {
	if b <= 1 {
		return 0
	}
	return uint32(uint64(1)<<bits.Len32(b-1) - 1)
}
