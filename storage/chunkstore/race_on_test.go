//go:build race

package chunkstore

// raceEnabled: the test binary runs under the race detector (make race),
// where the single-goroutine property tests cut their seeds: the unit
// stage runs them all without it.
const raceEnabled = true
