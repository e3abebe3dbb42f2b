package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PG names a placement group.
type PG struct{ Pool, Seq uint32 }

func (p PG) String() string { return fmt.Sprintf("%d.%x", p.Pool, p.Seq) }

// Record types.
const (
	recEntries   byte = 1 // first u64, count u32, count × (len u32, crc u32, bytes)
	recHardState byte = 2 // opaque bytes
	recCompact   byte = 3 // upTo u64: entries below are gone
	recDrop      byte = 4 // the PG is gone
)

const recHeader = 8   // length + crc
const bodyHeader = 9  // type + pool + pg
const entryHeader = 8 // length + crc

// appendRecord appends one record to b. fill writes the body after the
// common body header.
func appendRecord(b []byte, typ byte, pg PG, fill func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeader)...)
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, pg.Pool)
	b = binary.BigEndian.AppendUint32(b, pg.Seq)
	b = fill(b)
	body := b[start+recHeader:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

func appendEntry(b, ent []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(ent)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(ent, castagnoli))
	return append(b, ent...)
}
