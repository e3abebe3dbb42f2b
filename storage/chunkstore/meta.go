package chunkstore

import (
	"encoding/binary"
	"errors"
)

// objMeta is an object's meta record: size, version and a bitmap of the
// blocks that are stored. A clear bit is a hole (reads as zeros). The bitmap
// is the authority: a block whose bit is clear is never read from the file,
// and a set bit whose block fails its checksum is corruption.
type objMeta struct {
	size    int64
	version uint64
	bits    []byte // (nblocks(size)+7)/8 bytes; bits past nblocks(size) are zero
}

const metaHeaderLen = 16

var errBadMeta = errors.New("malformed object meta")

func nblocks(size, bs int64) int64 { return (size + bs - 1) / bs }

func (m *objMeta) has(i int64) bool {
	return i>>3 < int64(len(m.bits)) && m.bits[i>>3]&(1<<(i&7)) != 0
}

// empty reports whether no block is stored.
func (m *objMeta) empty() bool {
	for _, b := range m.bits {
		if b != 0 {
			return false
		}
	}
	return true
}

func (m *objMeta) set(i int64)   { m.bits[i>>3] |= 1 << (i & 7) }
func (m *objMeta) clear(i int64) { m.bits[i>>3] &^= 1 << (i & 7) }

// resize sets the size and fits the bitmap to it, clearing bits past the new
// end. Callers delete the blocks past a shrinking size first.
func (m *objMeta) resize(size, bs int64) {
	n := nblocks(size, bs)
	need := int((n + 7) / 8)
	if need <= len(m.bits) {
		m.bits = m.bits[:need]
		for i := n; i < int64(need)*8; i++ {
			m.clear(i)
		}
	} else {
		m.bits = append(m.bits, make([]byte, need-len(m.bits))...)
	}
	m.size = size
}

func (m *objMeta) encode() []byte {
	p := make([]byte, metaHeaderLen, metaHeaderLen+len(m.bits))
	binary.BigEndian.PutUint64(p, uint64(m.size))
	binary.BigEndian.PutUint64(p[8:], m.version)
	return append(p, m.bits...)
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
	if int64(len(p)-metaHeaderLen) != (n+7)/8 {
		return objMeta{}, errBadMeta
	}
	m.bits = append([]byte(nil), p[metaHeaderLen:]...)
	for i := n; i < int64(len(m.bits))*8; i++ {
		if m.has(i) {
			return objMeta{}, errBadMeta
		}
	}
	return m, nil
}
