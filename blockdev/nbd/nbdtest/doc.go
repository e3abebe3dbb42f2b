// Package nbdtest provides a real in-memory implementation of nbd.Opener
// and nbd.Export for tests: sparse images of 4 KiB blocks with an
// allocation map, a capacity that makes writes fail with ENOSPC when full,
// and composable fault injection (errors and delays by operation and byte
// range). Only tests may import it.
package nbdtest
