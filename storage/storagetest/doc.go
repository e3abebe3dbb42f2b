// Package storagetest holds in-memory fakes of the storage layer for tests:
// MemStore, a real in-memory implementation of the store an OSD needs
// (storage/osd.Store), with fault injectors that compose (crash during a
// commit leaving a prefix of the batch, a lying disk that drops writes).
//
// Who may import it: tests only (_test.go files). It imports
// storage/chunkstore for its types and sentinel errors, never storage/osd, so
// osd's own tests can use it.
package storagetest
