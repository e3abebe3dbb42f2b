package chunkstore

import (
	"encoding/binary"
	"errors"
	"slices"
)

// objMeta is an object's meta record: size, version and a bitmap of the
// blocks that are stored. A clear bit is a hole (reads as zeros). The bitmap
// is the authority: a block whose bit is clear is never read from the file,
// and a set bit whose block fails its checksum is corruption.
//
// alt says which of a stored block's two places in the file (slots, see
// objfile.go) holds its current bytes: bit set, slot 1. It is nil while
// every block is in slot 0, which is what every store written so far has;
// docs/design-big-writes.md explains what will put blocks in slot 1.
//
// bad marks stored blocks known to be damaged: their bytes are not the
// object's (a placed write's data that the device lost, flipped in by its
// data-less replay; a block that failed its checksum under a partial
// write). Reading one fails as corruption whatever its checksum says, a
// replay's torn-write tolerance (Store.Recover) never covers one, and only
// a write of the whole block (or making it a hole) clears the mark. So a
// partial write over damage neither stops the store nor launders the
// damaged bytes under a fresh checksum.
type objMeta struct {
	size    int64
	version uint64
	bits    []byte // (nblocks(size)+7)/8 bytes; bits past nblocks(size) are zero
	alt     []byte // nil, or len(bits) bytes; a bit is set only where bits has it
	bad     []byte // nil, or len(bits) bytes; a bit is set only where bits has it
}

const metaHeaderLen = 16

var errBadMeta = errors.New("malformed object meta")

func nblocks(size, bs int64) int64 { return (size + bs - 1) / bs }

// bit, setBit and clearBit read and change bit i of a bitmap.
func bit(b []byte, i int64) bool      { return b[i>>3]&(1<<(i&7)) != 0 }
func setBit(b []byte, i int64)        { b[i>>3] |= 1 << (i & 7) }
func clearBit(b []byte, i int64)      { b[i>>3] &^= 1 << (i & 7) }
func inBitmap(b []byte, i int64) bool { return i>>3 < int64(len(b)) }

func (m *objMeta) has(i int64) bool { return inBitmap(m.bits, i) && bit(m.bits, i) }

// empty reports whether no block is stored.
func (m *objMeta) empty() bool {
	for _, b := range m.bits {
		if b != 0 {
			return false
		}
	}
	return true
}

func (m *objMeta) set(i int64) { setBit(m.bits, i) }

// clear makes block i a hole (in no slot, not damaged).
func (m *objMeta) clear(i int64) {
	clearBit(m.bits, i)
	if m.alt != nil {
		clearBit(m.alt, i)
	}
	m.setBad(i, false)
}

// isBad reports whether stored block i is marked damaged (see objMeta).
func (m *objMeta) isBad(i int64) bool { return inBitmap(m.bad, i) && bit(m.bad, i) }

// setBad marks block i damaged or clears the mark.
func (m *objMeta) setBad(i int64, bad bool) {
	switch {
	case bad && m.bad == nil:
		m.bad = make([]byte, len(m.bits))
		fallthrough
	case bad:
		setBit(m.bad, i)
	case m.bad != nil:
		clearBit(m.bad, i)
	}
}

// slot is the slot holding block i's bytes (0 for a hole).
func (m *objMeta) slot(i int64) int {
	if inBitmap(m.alt, i) && bit(m.alt, i) {
		return 1
	}
	return 0
}

// setSlot records that stored block i's bytes are in slot s.
func (m *objMeta) setSlot(i int64, s int) {
	if s == 0 {
		if m.alt != nil {
			clearBit(m.alt, i)
		}
		return
	}
	if m.alt == nil {
		m.alt = make([]byte, len(m.bits))
	}
	setBit(m.alt, i)
}

// anyAlt reports whether a block in [i0, i1) is in slot 1.
func (m *objMeta) anyAlt(i0, i1 int64) bool {
	for i := i0; i < i1 && m.alt != nil; i++ {
		if m.slot(i) == 1 {
			return true
		}
	}
	return false
}

// resize sets the size and fits the bitmap to it, clearing bits past the new
// end. Callers delete the blocks past a shrinking size first.
func (m *objMeta) resize(size, bs int64) {
	n := nblocks(size, bs)
	need := int((n + 7) / 8)
	if need <= len(m.bits) {
		m.bits = m.bits[:need]
		if m.alt != nil {
			m.alt = m.alt[:need]
		}
		if m.bad != nil {
			m.bad = m.bad[:need]
		}
		for i := n; i < int64(need)*8; i++ {
			m.clear(i)
		}
	} else {
		m.bits = append(m.bits, make([]byte, need-len(m.bits))...)
		if m.alt != nil {
			m.alt = append(m.alt, make([]byte, need-len(m.alt))...)
		}
		if m.bad != nil {
			m.bad = append(m.bad, make([]byte, need-len(m.bad))...)
		}
	}
	m.size = size
}

// encode writes the header, the bitmap and, if a block is in slot 1 or
// damaged, the slot bitmap, then, if a block is damaged, the damage
// bitmap: a meta with every block in slot 0 and none damaged encodes as
// it always has.
func (m *objMeta) encode() []byte {
	nonzero := func(b byte) bool { return b != 0 }
	bad := slices.ContainsFunc(m.bad, nonzero)
	alt := bad || slices.ContainsFunc(m.alt, nonzero)
	n := len(m.bits)
	switch {
	case bad:
		n *= 3
	case alt:
		n *= 2
	}
	p := make([]byte, metaHeaderLen, metaHeaderLen+n)
	binary.BigEndian.PutUint64(p, uint64(m.size))
	binary.BigEndian.PutUint64(p[8:], m.version)
	p = append(p, m.bits...)
	if alt {
		if m.alt != nil {
			p = append(p, m.alt...)
		} else {
			p = append(p, make([]byte, len(m.bits))...)
		}
	}
	if bad {
		p = append(p, m.bad...)
	}
	return p
}

func decodeMeta(p []byte, bs int64) (objMeta, error) {
	if len(p) < metaHeaderLen {
		return objMeta{}, errBadMeta
	}
	m := objMeta{
		size:    int64(binary.BigEndian.Uint64(p)),
		version: binary.BigEndian.Uint64(p[8:]),
	}
	if m.size < 0 || m.size > MaxObjectSize {
		return objMeta{}, errBadMeta
	}
	n := nblocks(m.size, bs)
	nb := (n + 7) / 8
	switch int64(len(p) - metaHeaderLen) {
	case nb:
		m.bits = append([]byte(nil), p[metaHeaderLen:]...)
	case 2 * nb:
		m.bits = append([]byte(nil), p[metaHeaderLen:metaHeaderLen+nb]...)
		m.alt = append([]byte(nil), p[metaHeaderLen+nb:]...)
	case 3 * nb:
		m.bits = append([]byte(nil), p[metaHeaderLen:metaHeaderLen+nb]...)
		m.alt = append([]byte(nil), p[metaHeaderLen+nb:metaHeaderLen+2*nb]...)
		m.bad = append([]byte(nil), p[metaHeaderLen+2*nb:]...)
	default:
		return objMeta{}, errBadMeta
	}
	for i := n; i < int64(len(m.bits))*8; i++ {
		if m.has(i) {
			return objMeta{}, errBadMeta
		}
	}
	for i := range m.alt {
		if m.alt[i]&^m.bits[i] != 0 { // a hole in slot 1
			return objMeta{}, errBadMeta
		}
	}
	for i := range m.bad {
		if m.bad[i]&^m.bits[i] != 0 { // a damaged hole
			return objMeta{}, errBadMeta
		}
	}
	return m, nil
}
