//go:build !linux

package chunkstore

import "os"

// punch is a no-op where hole punching is not wired up; the meta bitmap
// marks the blocks as holes, so only space is not freed.
func punch(*os.File, int64, int64) {}

// freeBytes reports no free space where punch does nothing: there is no
// space a reserve could give back (reclaim.go).
func freeBytes(string) (int64, error) { return 0, nil }

// dropCache is a no-op where it is not wired up.
func dropCache(*os.File, int64, int64) {}

// dataRanges reports [lo, hi) as allocated where it cannot tell: the
// sweep then hands every slot to reclaim, which punches nothing here.
func dataRanges(_ *os.File, lo, hi int64) ([][2]int64, error) { return [][2]int64{{lo, hi}}, nil }
