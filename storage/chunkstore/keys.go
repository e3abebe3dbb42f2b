package chunkstore

import (
	"encoding/binary"
	"fmt"
)

// PG identifies a placement group: pool id and the PG's number in the pool.
type PG struct{ Pool, Seq uint32 }

// String formats pg like Ceph: pool in decimal, seq in hex ("3.1f").
func (pg PG) String() string { return fmt.Sprintf("%d.%x", pg.Pool, pg.Seq) }

// Badger key layout (meta/). Every key starts with a kind byte; PG-scoped
// keys continue with the pool and PG number (big-endian, so a PG is a
// contiguous prefix):
//
//	's' "meta"                 store format and block size
//	'm' pool seq name          object meta (size, version, block bitmap)
//	'r' pool seq 'a'           apply state as of the last checkpoint
//	'r' pool seq 'd'           the PG is being dropped (droppg.go)
//
// Every value starts with a CRC-32C over key and payload (see seal). Object
// data lives in files (objfile.go), the raft log in the WAL (storage/wal).
const (
	kindMeta  = 'm'
	kindRaft  = 'r'
	kindStore = 's'

	raftApply = 'a'

	pgPrefixLen = 9

	// MaxNameLen is the longest object name in bytes.
	MaxNameLen = 1024
	// MaxObjectSize is the largest object size; a write, zero or truncate
	// reaching past it fails with ErrTooLarge.
	MaxObjectSize = 32 << 20
)

var storeMetaKey = []byte{kindStore, 'm', 'e', 't', 'a'}

// pgKinds are the kinds of PG-scoped keys.
var pgKinds = []byte{kindMeta, kindRaft}

func pgPrefix(kind byte, pg PG, extra int) []byte {
	k := make([]byte, pgPrefixLen, pgPrefixLen+extra)
	k[0] = kind
	binary.BigEndian.PutUint32(k[1:], pg.Pool)
	binary.BigEndian.PutUint32(k[5:], pg.Seq)
	return k
}

// pgOfKey decodes the PG of a PG-scoped key.
func pgOfKey(k []byte) (PG, bool) {
	if len(k) < pgPrefixLen {
		return PG{}, false
	}
	return PG{Pool: binary.BigEndian.Uint32(k[1:]), Seq: binary.BigEndian.Uint32(k[5:])}, true
}

// nextPGPrefix returns the smallest key of kind after every key of pg, or
// nil if pg is the last possible one.
func nextPGPrefix(kind byte, pg PG) []byte {
	switch {
	case pg.Seq < ^uint32(0):
		pg.Seq++
	case pg.Pool < ^uint32(0):
		pg.Pool, pg.Seq = pg.Pool+1, 0
	default:
		return nil
	}
	return pgPrefix(kind, pg, 0)
}

func metaKey(pg PG, name string) []byte {
	return append(pgPrefix(kindMeta, pg, len(name)), name...)
}

func raftKey(pg PG, sub byte) []byte {
	return append(pgPrefix(kindRaft, pg, 1), sub)
}

func validName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: object name length %d not in [1, %d]", ErrInvalid, len(name), MaxNameLen)
	}
	return nil
}
