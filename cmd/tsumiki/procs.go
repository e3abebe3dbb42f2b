package main

import (
	"os"
	"runtime"
)

// minProcs is the fewest Ps (GOMAXPROCS) a tsumiki process runs with.
//
// A goroutine in a blocking system call (a pread that misses the page cache,
// an fsync) keeps its P until the runtime's monitor hands the P to another
// thread, which takes from 20 µs up to 10 ms. On a 2-core host with
// GOMAXPROCS=2, two cold reads in flight stall every other goroutine of
// the process — the NBD server, the client, the raft loops — for that
// long: random reads at queue depth 32 ran at 9–11 k/s with the CPU a
// quarter idle, and at 12–14 k/s with 8 Ps (docs/benchmarks.md). The
// kernel shares the cores among the extra threads. An explicit GOMAXPROCS
// in the environment wins.
const minProcs = 8

// raiseProcs applies minProcs unless GOMAXPROCS is set.
func raiseProcs() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if runtime.GOMAXPROCS(0) < minProcs {
		runtime.GOMAXPROCS(minProcs)
	}
}
