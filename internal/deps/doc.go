// Package deps holds no code, only a test: deps_test.go checks the
// direction of imports across the module (STYLE.md habit 14). Imports point
// down the data path only:
//
//	nfsgw → blockdev → storage/client → (network) → storage/osd → cache → storage/chunkstore
//
// with storage/placement and storage/wire as standard-library-only leaves,
// badger only behind storage/chunkstore, the embedded etcd server only behind
// storage/mon, and cmd/tsumiki the one place where concrete types meet.
//
// Nothing imports this package.
package deps
