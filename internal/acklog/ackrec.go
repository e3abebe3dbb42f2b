package acklog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Ack records: a writer can also record its acknowledgements on the device
// under test, each writer in its own AckRecordSize record that it
// overwrites (synchronously, O_DSYNC) after each acknowledged write with
// that write's seq. Since a writer writes its record only after the write
// was acknowledged, any state of the device that holds a record also holds
// every write up to the one it names, if the device keeps what it
// acknowledges. This lets a check run against any crash state of the
// device (a prefix of its write log, package writelog) without knowing
// when that state was current: the state says itself which writes it must
// hold (ReplayAcked).

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
