package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PG names a placement group.
type PG struct{ Pool, Seq uint32 }

func (p PG) String() string { return fmt.Sprintf("%d.%x", p.Pool, p.Seq) }

// Record types.
const (
	recEntries   byte = 1 // first u64, count u32, count × (len u32 | markBit, crc u32, bytes)
	recHardState byte = 2 // opaque bytes
	recCompact   byte = 3 // upTo u64: entries below are gone
	recDrop      byte = 4 // the PG is gone
	recRewrite   byte = 5 // index u64, one entry (len u32 | markBit, crc u32, bytes)
)

const recHeader = 8   // length + crc
const bodyHeader = 9  // type + pool + pg
const entryHeader = 8 // length + crc

// markBit, set in an entry header's length, marks the entry (AppendMarked).
// Entry lengths stay far below it (frames are at most 33 MiB), and no log
// written before marks existed has it set.
const markBit = 1 << 31

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
	sum, err := recordSum(body, false)
	if err != nil {
		panic("wal: malformed record built: " + err.Error()) // our own encoding
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], sum)
	return b
}

// recordSum is the checksum of a record body. For an entries record it
// covers everything but the entry payloads, which carry their own
// checksums (in the entry headers it does cover), so each payload byte is
// summed once on the write path. With verify, each payload is checked
// against its checksum too (replay). Errors: a malformed entries record, a
// payload that does not match.
//
// A rewrite record is summed the same way, as a record of one entry.
func recordSum(body []byte, verify bool) (uint32, error) {
	if len(body) < bodyHeader || (body[0] != recEntries && body[0] != recRewrite) {
		return crc32.Checksum(body, castagnoli), nil
	}
	count, pos := 1, bodyHeader+8
	if body[0] == recEntries {
		if len(body) < bodyHeader+12 {
			return 0, errors.New("short entries record")
		}
		count, pos = int(binary.BigEndian.Uint32(body[bodyHeader+8:])), bodyHeader+12
	} else if len(body) < pos {
		return 0, errors.New("short rewrite record")
	}
	sum := crc32.Update(0, castagnoli, body[:pos])
	for i := 0; i < count; i++ {
		if pos+entryHeader > len(body) {
			return 0, errors.New("short entry")
		}
		n := int(binary.BigEndian.Uint32(body[pos:]) &^ markBit)
		if pos+entryHeader+n > len(body) {
			return 0, errors.New("short entry")
		}
		sum = crc32.Update(sum, castagnoli, body[pos:pos+entryHeader])
		if verify && crc32.Checksum(body[pos+entryHeader:pos+entryHeader+n], castagnoli) != binary.BigEndian.Uint32(body[pos+4:]) {
			return 0, fmt.Errorf("entry %d of the record fails its checksum", i)
		}
		pos += entryHeader + n
	}
	if pos != len(body) {
		return 0, errors.New("trailing bytes after the entries")
	}
	return sum, nil
}

func appendEntry(b, ent []byte, marked bool) []byte {
	if len(ent) >= markBit {
		panic("wal: entry too large") // callers bound entries by the frame size
	}
	h := uint32(len(ent))
	if marked {
		h |= markBit
	}
	b = binary.BigEndian.AppendUint32(b, h)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(ent, castagnoli))
	return append(b, ent...)
}
