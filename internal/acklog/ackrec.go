package acklog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Ack records: a writer can also record its acknowledgements on the device
// under test, each writer in its own AckRecordSize record that it
// overwrites after each acknowledged write with that write's seq: a plain
// direct write, no flush, so that the record itself makes nothing else
// durable. A crash state of the device (package writelog) that holds a
// record then says which writes it must hold: every write of that writer
// up to the one the record names, if the device kept what it acknowledged
// (ReplayAcked). The strictest such state ends at a flush and keeps, of
// the writes completed after it, only the records: an acknowledgement
// given before the writes it covers were flushed shows up as a lost write.
// AckRecordSize is the size of one writer's record, and its alignment.
const AckRecordSize = 4096

const ackMagic = 0x74736b61636b7265 // "tskackre"

// EncodeAck fills p (AckRecordSize bytes) with writer w's record of seq.
func EncodeAck(p []byte, w int, seq uint64) {
	clear(p)
	binary.BigEndian.PutUint64(p[0:], ackMagic)
	binary.BigEndian.PutUint32(p[8:], uint32(w))
	binary.BigEndian.PutUint64(p[12:], seq)
	binary.BigEndian.PutUint32(p[20:], crc32.Checksum(p[:20], castagnoli))
}

// DecodeAck reads writer w's record: the seq of its last acknowledged
// write, 0 for a record never written (zeros). Anything else is
// ErrCorrupt: records are written whole, so a torn one is a device fault.
func DecodeAck(p []byte, w int) (uint64, error) {
	if len(p) != AckRecordSize {
		return 0, fmt.Errorf("%w: ack record of %d bytes", ErrCorrupt, len(p))
	}
	if allZero(p) {
		return 0, nil
	}
	if binary.BigEndian.Uint64(p[0:]) != ackMagic || crc32.Checksum(p[:20], castagnoli) != binary.BigEndian.Uint32(p[20:]) {
		return 0, fmt.Errorf("%w: ack record of writer %d", ErrCorrupt, w)
	}
	if got := int(binary.BigEndian.Uint32(p[8:])); got != w {
		return 0, fmt.Errorf("%w: writer %d's ack record names writer %d", ErrCorrupt, w, got)
	}
	return binary.BigEndian.Uint64(p[12:]), nil
}
