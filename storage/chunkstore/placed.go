package chunkstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"syscall"
)

// Placed entries (docs/design-big-writes.md, step 3). When a raft entry
// carries a large block-aligned write, the store writes the data once,
// into object slots that are not current, and logs a placedRecord instead
// of the entry: the entry without the data, and where each block went. The
// log marks such records (wal.Batch.AppendMarked) and Entries rebuilds the
// entry's exact bytes from the slots (placement.go wires it into Batch).

// placedVersion is the first byte of an encoded placedRecord;
// placedLostVersion that of one whose data was found damaged and dropped
// (rewriteInline): it cannot be rebuilt, but its entry's head is kept for
// raft, and its slots stay claimed until the entry leaves the log.
const (
	placedVersion     = 1
	placedLostVersion = 2
)

// placedRecord describes one placed entry. A record is only meaningful to
// the store that wrote it (block size, slots and checksums are its own).
type placedRecord struct {
	cut   int      // the data started at this offset of the entry
	name  string   // the object written
	off   int64    // its offset in the object, block-aligned
	n     int64    // number of blocks
	slots []byte   // bit i: block off/bs+i went to slot 1
	holes []byte   // bit i: the block is all zeros and was not written
	sums  []uint32 // checksum of each block as stored (0 for holes)
	rest  []byte   // the entry without the data
	lost  bool     // the data was found damaged and dropped: it is not rebuilt
}

var errBadPlaced = errors.New("malformed placed-entry record")

// placeEntry makes the record for entry, whose bytes [lo, hi) are the data
// of a write at offset off of b's object, and returns it with the data. The
// data must be whole blocks at a block-aligned offset. slotOf chooses each
// block's slot (by block index in the object). It touches no file. Errors:
// ErrInvalid for a range that is not whole blocks inside the object.
func (b *blockIO) placeEntry(entry []byte, lo, hi int, off int64, slotOf func(i int64) int) (*placedRecord, []byte, error) {
	if lo < 0 || hi > len(entry) || lo >= hi {
		return nil, nil, fmt.Errorf("%w: place bytes [%d, %d) of an entry of %d", ErrInvalid, lo, hi, len(entry))
	}
	data := entry[lo:hi]
	r, err := b.placeData(slices.Concat(entry[:lo], entry[hi:]), lo, data, off, slotOf)
	return r, data, err
}

// placeData is placeEntry for an entry given in two parts (Place.Data):
// rest, the entry without its data, which the record keeps (the caller
// gives it up), and the data, which went at byte lo of the entry.
func (b *blockIO) placeData(rest []byte, lo int, data []byte, off int64, slotOf func(i int64) int) (*placedRecord, error) {
	bs := b.bs
	if lo < 0 || lo > len(rest) || len(data) == 0 || off < 0 || off%bs != 0 || int64(len(data))%bs != 0 || off+int64(len(data)) > MaxObjectSize {
		return nil, fmt.Errorf("%w: place %d bytes at %d of an entry at offset %d (block size %d)", ErrInvalid, len(data), lo, off, bs)
	}
	n := int64(len(data)) / bs
	r := &placedRecord{cut: lo, name: b.id.name, off: off, n: n, rest: rest,
		slots: make([]byte, (n+7)/8), holes: make([]byte, (n+7)/8), sums: make([]uint32, n)}
	for k := int64(0); k < n; k++ {
		blk := data[k*bs : (k+1)*bs]
		if bytes.Equal(blk, b.zero) {
			setBit(r.holes, k)
			continue
		}
		i := off/bs + k
		if slotOf(i) == 1 {
			setBit(r.slots, k)
		}
		r.sums[k] = b.id.blockSum(i, blk)
	}
	return r, nil
}

// encode serialises r:
//
//	u8 version, u32 cut, u64 off, u32 n, u16 len(name), name,
//	slots bitmap, holes bitmap, n × u32 sums, rest
func (r *placedRecord) encode() []byte {
	p := make([]byte, 0, 1+4+8+4+2+len(r.name)+len(r.slots)+len(r.holes)+4*len(r.sums)+len(r.rest))
	p = append(p, placedVersion)
	if r.lost {
		p[0] = placedLostVersion
	}
	p = binary.BigEndian.AppendUint32(p, uint32(r.cut))
	p = binary.BigEndian.AppendUint64(p, uint64(r.off))
	p = binary.BigEndian.AppendUint32(p, uint32(r.n))
	p = binary.BigEndian.AppendUint16(p, uint16(len(r.name)))
	p = append(p, r.name...)
	p = append(p, r.slots...)
	p = append(p, r.holes...)
	for _, s := range r.sums {
		p = binary.BigEndian.AppendUint32(p, s)
	}
	return append(p, r.rest...)
}

// decodePlaced parses an encoded record for a store of block size bs. It
// refuses anything encode could not have produced; rest aliases p.
func decodePlaced(p []byte, bs int64) (*placedRecord, error) {
	const fixed = 1 + 4 + 8 + 4 + 2
	if len(p) < fixed || (p[0] != placedVersion && p[0] != placedLostVersion) {
		return nil, errBadPlaced
	}
	r := &placedRecord{
		lost: p[0] == placedLostVersion,
		cut:  int(binary.BigEndian.Uint32(p[1:])),
		off:  int64(binary.BigEndian.Uint64(p[5:])),
		n:    int64(binary.BigEndian.Uint32(p[13:])),
	}
	nameLen := int(binary.BigEndian.Uint16(p[17:]))
	if r.off < 0 || r.off%bs != 0 || r.n <= 0 || r.n > MaxObjectSize/bs || r.off+r.n*bs > MaxObjectSize ||
		nameLen == 0 || nameLen > MaxNameLen {
		return nil, errBadPlaced
	}
	bm := int((r.n + 7) / 8)
	pos := fixed
	if len(p) < pos+nameLen+2*bm+4*int(r.n) {
		return nil, errBadPlaced
	}
	r.name = string(p[pos : pos+nameLen])
	pos += nameLen
	r.slots = p[pos : pos+bm : pos+bm]
	pos += bm
	r.holes = p[pos : pos+bm : pos+bm]
	pos += bm
	r.sums = make([]uint32, r.n)
	for k := range r.sums {
		r.sums[k] = binary.BigEndian.Uint32(p[pos:])
		pos += 4
	}
	r.rest = p[pos:]
	if r.cut > len(r.rest) {
		return nil, errBadPlaced
	}
	for k := r.n; k < int64(bm)*8; k++ {
		if bit(r.slots, k) || bit(r.holes, k) {
			return nil, errBadPlaced
		}
	}
	for k := int64(0); k < r.n; k++ {
		if bit(r.holes, k) && (bit(r.slots, k) || r.sums[k] != 0) {
			return nil, errBadPlaced
		}
	}
	return r, nil
}

// slotRuns returns r's written blocks as runs of consecutive blocks in one
// slot (object block indexes), holes left out: what the claims record. A
// lost record keeps its claims: a replay may still flip its slots in
// (ApplyPlaced), so no other write may be placed there meanwhile.
func (r *placedRecord) slotRuns(bs int64) []slotRun {
	var runs []slotRun
	i0 := r.off / bs
	for k := int64(0); k < r.n; k++ {
		if bit(r.holes, k) {
			continue
		}
		s := 0
		if bit(r.slots, k) {
			s = 1
		}
		runs = appendRun(runs, i0+k, s)
	}
	return runs
}

// appendRun adds block i in slot s to runs, extending the last run when i
// continues it in the same slot.
func appendRun(runs []slotRun, i int64, s int) []slotRun {
	if l := len(runs); l > 0 && runs[l-1].hi == i && runs[l-1].slot == s {
		runs[l-1].hi++
		return runs
	}
	return append(runs, slotRun{lo: i, hi: i + 1, slot: s})
}

// rebuild returns the entry r was made from, reading the data from the
// slots of b's file (b must be the record's object) and checking every
// block against the checksum in r. A mismatch is corruption of the entry
// (ErrDamagedEntry), not a reused slot: the claims keep a placed entry's
// slots from being reused while it is in the log. A lost record gives
// ErrDamagedEntry without reading.
func (r *placedRecord) rebuild(b *blockIO) ([]byte, error) {
	if r.lost {
		return nil, b.l.corrupt("placed entry: its data was found damaged earlier and dropped", ErrDamagedEntry)
	}
	size := int64(len(r.rest)) + r.n*b.bs
	entry := make([]byte, size)
	copy(entry, r.rest[:r.cut])
	copy(entry[int64(r.cut)+r.n*b.bs:], r.rest[r.cut:])
	data := entry[r.cut : int64(r.cut)+r.n*b.bs]
	i0 := r.off / b.bs
	for _, run := range r.slotRuns(b.bs) {
		dst := data[(run.lo-i0)*b.bs : (run.hi-i0)*b.bs]
		if err := preadFull(b.f, dst, b.dataOff(run.lo, run.slot)); errors.Is(err, syscall.EIO) {
			// The device cannot read the slot back: as damaged as a
			// bad checksum, and as permanent.
			return nil, b.l.withBlock(run.lo).corrupt(fmt.Sprintf("placed entry: slot %d unreadable: %v", run.slot, err), ErrDamagedEntry)
		} else if err != nil {
			return nil, b.l.wrap(fmt.Errorf("read placed blocks: %w", err))
		}
		for i := run.lo; i < run.hi; i++ {
			blk := data[(i-i0)*b.bs : (i-i0+1)*b.bs]
			if want := r.sums[i-i0]; b.id.blockSum(i, blk) != want {
				return nil, b.l.withBlock(i).corrupt(fmt.Sprintf("placed entry: slot %d checksum mismatch (logged %08x)", run.slot, want), ErrDamagedEntry)
			}
		}
	}
	return entry, nil // holes are already zeros
}

// writeSlots writes r's blocks (data as placeEntry returned it) and their
// checksums into their slots of b's file, one pwrite of bytes (or several
// direct ones, when b.direct is set) and one of checksums per run. It does
// not sync: the caller makes the file durable before the log record that
// points at it.
func (r *placedRecord) writeSlots(b *blockIO, data []byte) error {
	i0 := r.off / b.bs
	for _, run := range r.slotRuns(b.bs) {
		blocks, off := data[(run.lo-i0)*b.bs:(run.hi-i0)*b.bs], b.dataOff(run.lo, run.slot)
		var err error
		if b.direct != nil {
			err = b.writeDirect(blocks, off)
		} else {
			_, err = b.f.WriteAt(blocks, off)
		}
		if err != nil {
			return b.l.wrap(fmt.Errorf("write placed blocks: %w", err))
		}
		sums := make([]byte, 0, 4*(run.hi-run.lo))
		for i := run.lo; i < run.hi; i++ {
			sums = binary.BigEndian.AppendUint32(sums, r.sums[i-i0])
		}
		if _, err := b.f.WriteAt(sums, b.sumOff(run.lo, run.slot)); err != nil {
			return b.l.wrap(fmt.Errorf("write placed checksums: %w", err))
		}
		if b.direct == nil {
			startWriteback(b.f, off, int64(len(blocks)))
		}
	}
	return nil
}

// flip applies the placed record r to the object's meta m: each written
// block becomes current in the slot r put it in, each hole block becomes a
// hole; the size grows to cover the write; nothing is read or written.
// Space is not freed here: the slots a block left may still be claimed
// (checkpoint and log), and reclaim punches them once they are not. It
// returns the slots blocks left, as runs (for the C2 claims).
func (b *blockIO) flip(m *objMeta, r *placedRecord) []slotRun {
	if end := r.off + r.n*b.bs; end > m.size {
		m.resize(end, b.bs)
	}
	var left []slotRun
	i0 := r.off / b.bs
	for k := int64(0); k < r.n; k++ {
		i := i0 + k
		hole := bit(r.holes, k)
		s := 0
		if bit(r.slots, k) {
			s = 1
		}
		if m.has(i) && (hole || m.slot(i) != s) {
			left = appendRun(left, i, m.slot(i))
		}
		if hole {
			m.clear(i)
			continue
		}
		m.set(i)
		m.setSlot(i, s)
		m.setBad(i, false)
	}
	return left
}

// markDamaged runs after a flip of r without its data (ApplyPlaced): it
// reads back each block r flipped in and marks damaged (objMeta.bad) each
// one that matches neither the checksum r logged nor the one stored beside
// it, cannot be read, or whose file is gone. Those blocks are why the data
// was not available; marked, they read as corrupt and a later partial
// write (a replay's included) cannot vouch for their bytes. A block that
// matches only its stored checksum holds newer bytes: during a replay, an
// in-place write after r (a conversion) may have reached the slot, and the
// replay of that write rewrites it. It returns how many it marked.
func (r *placedRecord) markDamaged(b *blockIO, m *objMeta) (int, error) {
	i0 := r.off / b.bs
	blk := make([]byte, b.bs)
	marked := 0
	for k := int64(0); k < r.n; k++ {
		i := i0 + k
		if bit(r.holes, k) {
			continue
		}
		bad := b.f == nil
		if !bad {
			var stored [4]byte
			err := preadFull(b.f, blk, b.dataOff(i, m.slot(i)))
			if err == nil {
				err = preadFull(b.f, stored[:], b.sumOff(i, m.slot(i)))
			}
			if err != nil && !errors.Is(err, syscall.EIO) {
				return marked, b.l.withBlock(i).wrap(fmt.Errorf("check flipped block: %w", err))
			}
			sum := b.id.blockSum(i, blk)
			bad = err != nil || (sum != r.sums[k] && sum != binary.BigEndian.Uint32(stored[:]))
		}
		if bad {
			m.setBad(i, true)
			marked++
		}
	}
	return marked, nil
}
