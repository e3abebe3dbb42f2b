// Package acklog checks that a block device kept every acknowledged write
// through a crash. A writer fills the device with self-describing 4 KiB
// units (which writer, which unit, which write, a checksum) and logs each
// write before it is issued and again once the device acknowledged it;
// after the crash and the restart, a check reads every unit back and
// compares it with what the log allows: the last acknowledged write of
// that unit, or the one write that was in flight when the crash came.
//
// The log must be kept somewhere the crash does not reach (in the power
// loss test: a host folder shared into the guest that loses power). Each
// writer owns a region of the device and has one write in flight at a
// time, so a unit's possible contents are known exactly.
//
// It is a test tool: the power-loss test (cmd/tsumiki) and its guest-side
// command (internal/acklog/ackcheck) import it.
package acklog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// UnitSize is the size of a unit: the device's block, written whole.
const UnitSize = 4096

const (
	magic   = 0x74736b61636b3031 // "tskack01"
	hdrSize = 8 + 4 + 8 + 8      // magic, writer, unit, seq; then the checksum
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is a unit that is neither zeros nor a whole unit: a torn or
// damaged write.
var ErrCorrupt = errors.New("acklog: corrupt unit")

// Header is what a unit says about itself.
type Header struct {
	Writer int
	Unit   int64
	Seq    uint64
}

// EncodeUnit fills p (UnitSize bytes) as unit u of writer w's write seq:
// the header, bytes derived from all three, and a checksum over the rest.
func EncodeUnit(p []byte, w int, u int64, seq uint64) {
	binary.BigEndian.PutUint64(p[0:], magic)
	binary.BigEndian.PutUint32(p[8:], uint32(w))
	binary.BigEndian.PutUint64(p[12:], uint64(u))
	binary.BigEndian.PutUint64(p[20:], seq)
	x := seq*0x9e3779b97f4a7c15 ^ uint64(u)<<20 ^ uint64(w) // xorshift state, never 0 in practice
	if x == 0 {
		x = 1
	}
	for i := hdrSize; i+8 <= UnitSize-4; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(p[i:], x)
	}
	binary.BigEndian.PutUint32(p[UnitSize-4:], crc32.Checksum(p[:UnitSize-4], castagnoli))
}

// DecodeUnit reads a unit back: zero is true for a unit never written (all
// zeros); otherwise its header, or ErrCorrupt.
func DecodeUnit(p []byte) (h Header, zero bool, err error) {
	if len(p) != UnitSize {
		return h, false, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(p))
	}
	if allZero(p) {
		return h, true, nil
	}
	if binary.BigEndian.Uint64(p[0:]) != magic {
		return h, false, fmt.Errorf("%w: no header", ErrCorrupt)
	}
	if crc32.Checksum(p[:UnitSize-4], castagnoli) != binary.BigEndian.Uint32(p[UnitSize-4:]) {
		return h, false, fmt.Errorf("%w: checksum mismatch (torn or damaged)", ErrCorrupt)
	}
	h = Header{Writer: int(binary.BigEndian.Uint32(p[8:])), Unit: int64(binary.BigEndian.Uint64(p[12:])),
		Seq: binary.BigEndian.Uint64(p[20:])}
	return h, false, nil
}

func allZero(p []byte) bool {
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// Layout divides a device of Units units among Writers writers: writer w
// owns units [Region(w)).
type Layout struct {
	Units   int64
	Writers int
}

// Region returns the units [lo, hi) writer w owns.
func (l Layout) Region(w int) (lo, hi int64) {
	return int64(w) * l.Units / int64(l.Writers), int64(w+1) * l.Units / int64(l.Writers)
}

// Owner returns the writer that owns unit u.
func (l Layout) Owner(u int64) int {
	for w := range l.Writers {
		if _, hi := l.Region(w); u < hi {
			return w
		}
	}
	return l.Writers - 1
}
