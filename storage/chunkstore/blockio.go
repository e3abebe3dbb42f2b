package chunkstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
)

// blockIO reads and writes one object's blocks in its file. The caller holds
// the object's stripe lock (shared to read, exclusive to write).
type blockIO struct {
	id       objID
	f        *os.File
	l        loc
	bs       int64
	table    int64 // tableSize(bs)
	zero     []byte
	tolerate bool // replaying after a crash: a checksum mismatch may be a torn write (see Store.Recover)
	torn     int  // blocks read with a mismatch that tolerate let through
	marked   int  // blocks a partial write found damaged and marked (readForUpdate)
	// skipped, if set, makes read go on past a damaged block: it reads
	// as zeros and its index is appended here (Store.ReadSkippingDamage).
	skipped *[]int64

	direct *os.File    // set for a placement written past the page cache (direct.go)
	bufs   *directBufs // aligned buffers for direct
}

func (s *Store) blockIO(id objID, f *os.File, l loc) *blockIO {
	return &blockIO{id: id, f: f, l: l, bs: int64(s.cfg.BlockSize), table: s.table, zero: s.zeroBlock}
}

// sumOff and dataOff are where block i's checksum and bytes are in slot s
// (objfile.go).
func (b *blockIO) sumOff(i int64, s int) int64 {
	return int64(s)*(b.table+MaxObjectSize) + 4*i
}

func (b *blockIO) dataOff(i int64, s int) int64 {
	return int64(s)*(b.table+MaxObjectSize) + b.table + i*b.bs
}

// read fills dst with blocks [i0, i0+len(dst)/bs) as m describes them:
// holes read as zeros without touching the file, stored blocks are
// verified. The damaged bytes of a failing block are never left in dst.
// Blocks come from their slots in as few preads as the slots allow: one
// pair (checksums, bytes) per run of blocks in the same slot, holes inside
// a run read along (and cleared below).
func (b *blockIO) read(m *objMeta, i0 int64, dst []byte) error {
	n := int64(len(dst)) / b.bs
	first, last := int64(-1), int64(-1)
	for i := i0; i < i0+n; i++ {
		if m.has(i) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		clear(dst)
		return nil
	}
	sums := make([]byte, 4*(last-first+1))
	for lo := first; lo <= last; {
		s, hi := m.slot(lo), lo+1
		for hi <= last && (!m.has(hi) || m.slot(hi) == s) {
			hi++
		}
		if err := preadFull(b.f, sums[4*(lo-first):4*(hi-first)], b.sumOff(lo, s)); err != nil {
			return b.l.wrap(fmt.Errorf("read checksums: %w", err))
		}
		if err := preadFull(b.f, dst[(lo-i0)*b.bs:(hi-i0)*b.bs], b.dataOff(lo, s)); err != nil {
			return b.l.wrap(fmt.Errorf("read blocks: %w", err))
		}
		lo = hi
		for lo <= last && !m.has(lo) {
			lo++
		}
	}
	for i := i0; i < i0+n; i++ {
		blk := dst[(i-i0)*b.bs : (i-i0+1)*b.bs]
		if !m.has(i) {
			clear(blk)
			continue
		}
		var damage string
		want := binary.BigEndian.Uint32(sums[4*(i-first):])
		switch got := b.id.blockSum(i, blk); {
		case m.isBad(i):
			damage = "block marked damaged: a partial write, a lost placed write or a copy from a damaged replica left it so; a whole-block write or a repair from a replica restores it"
		case got == want:
			continue
		case got == ^want:
			// Stored inverted on purpose (put's keep): damage that a
			// crash may have dropped the meta's mark of. Never torn.
			damage = "block stored marked damaged: a partial write over damage left it so; a whole-block write or a repair from a replica restores it"
		case b.tolerate:
			b.torn++
			continue
		default:
			damage = fmt.Sprintf("checksum mismatch (stored %08x)", want)
		}
		clear(blk)
		if b.skipped == nil {
			return b.l.withBlock(i).corrupt(damage, nil)
		}
		*b.skipped = append(*b.skipped, i)
	}
	return nil
}

// readForUpdate fills dst (one block) with block i for a partial write
// over it. A block marked damaged is read as it is, unchecked; a block
// that fails its checksum (outside a replay's tolerance) is marked
// damaged here and read the same way. Either way it reports bad, and the
// caller stores the updated block still marked (put's keep): the bytes
// the write does not cover are not the object's, and must not gain a
// checksum that vouches for them. The write itself goes through, so one
// damaged block does not stop the store; reads of the block keep failing
// until a whole-block write or a repair.
func (b *blockIO) readForUpdate(m *objMeta, i int64, dst []byte) (bad bool, err error) {
	if !m.isBad(i) {
		err := b.read(m, i, dst)
		if !m.has(i) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, syscall.EIO)) {
			return false, err
		}
		b.marked++
	}
	if err := preadFull(b.f, dst, b.dataOff(i, m.slot(i))); err != nil && !errors.Is(err, syscall.EIO) {
		return false, b.l.withBlock(i).wrap(fmt.Errorf("read damaged block: %w", err))
	}
	m.setBad(i, true)
	return true, nil
}

// readRange fills p with the object's bytes at off (any alignment); bytes
// past the object's size read as zeros.
func (b *blockIO) readRange(m *objMeta, off int64, p []byte) error {
	end := off + int64(len(p))
	if off >= m.size {
		clear(p)
		return nil
	}
	if end > m.size {
		clear(p[m.size-off:])
		p, end = p[:m.size-off], m.size
	}
	i0, i1 := off/b.bs, (end-1)/b.bs
	if off%b.bs == 0 && end%b.bs == 0 {
		return b.read(m, i0, p)
	}
	buf := make([]byte, (i1-i0+1)*b.bs)
	if err := b.read(m, i0, buf); err != nil {
		return err
	}
	copy(p, buf[off-i0*b.bs:])
	return nil
}

// put stores buf (whole blocks) as blocks i0, i0+1, ...: all-zero blocks
// become holes, the others are written in place, in the slot that holds
// them (slot 0 for a hole), with their checksums: one pwrite of bytes and
// one of checksums per run of consecutive blocks in the same slot. Only the
// written blocks' checksums are touched: the other slot's may belong to
// bytes written there for a later flip (docs/design-big-writes.md).
//
// Writes go through the page cache, which is the OSD's read cache: the
// leader serves reads from it, and checkpoints make the files durable. An
// earlier version wrote runs of 64 KiB or more with O_DIRECT; after a bulk
// write nothing was cached, and random 4 KiB reads through NBD ran at
// 9–11 k/s against 24–26 k/s now (docs/benchmarks.md, 2026-11-26).
//
// keep lists blocks that stay marked damaged (readForUpdate): they are
// stored even when all zeros, under the inverse of their checksum, so the
// file itself says they are damaged (read refuses them, and a replay's
// tolerance does not take them for torn) even when a crash loses the
// meta's mark, which reaches the disk only at a checkpoint. Every other
// block written loses its mark.
func (b *blockIO) put(m *objMeta, i0 int64, buf []byte, keep ...int64) error {
	n := int64(len(buf)) / b.bs
	sums := make([]byte, 4*n)
	runStart, runSlot := int64(-1), 0
	flush := func(end int64) error {
		if runStart < 0 {
			return nil
		}
		lo, hi := runStart-i0, end-i0
		start := runStart
		runStart = -1
		if _, err := b.f.WriteAt(buf[lo*b.bs:hi*b.bs], b.dataOff(start, runSlot)); err != nil {
			return b.l.wrap(fmt.Errorf("write blocks: %w", err))
		}
		if _, err := b.f.WriteAt(sums[4*lo:4*hi], b.sumOff(start, runSlot)); err != nil {
			return b.l.wrap(fmt.Errorf("write checksums: %w", err))
		}
		return nil
	}
	for i := i0; i < i0+n; i++ {
		blk := buf[(i-i0)*b.bs : (i-i0+1)*b.bs]
		bad := slices.Contains(keep, i)
		if !bad && bytes.Equal(blk, b.zero) {
			if err := flush(i); err != nil {
				return err
			}
			b.drop(m, i, i+1)
			continue
		}
		sum := b.id.blockSum(i, blk)
		if bad {
			sum = ^sum // the mark on disk too: the meta's reaches it only at a checkpoint
		}
		binary.BigEndian.PutUint32(sums[4*(i-i0):], sum)
		s := m.slot(i) // 0 for a hole
		m.set(i)
		m.setBad(i, bad)
		if runStart >= 0 && s != runSlot {
			if err := flush(i); err != nil {
				return err
			}
		}
		if runStart < 0 {
			runStart, runSlot = i, s
		}
	}
	return flush(i0 + n)
}

// markDamaged stores every block holding bytes [off, off+n) as zeros
// marked damaged (put's keep), growing the object to off+n if smaller: what
// a copy from a replica whose blocks there were damaged leaves
// (Batch.MarkDamaged).
func (b *blockIO) markDamaged(m *objMeta, off, n int64) error {
	if n <= 0 {
		return nil
	}
	if end := off + n; end > m.size {
		m.resize(end, b.bs)
	}
	for i := off / b.bs; i <= (off+n-1)/b.bs; i++ {
		if err := b.put(m, i, make([]byte, b.bs), i); err != nil {
			return err
		}
	}
	return nil
}

// drop makes blocks [i0, i1) holes and frees their space in both slots.
func (b *blockIO) drop(m *objMeta, i0, i1 int64) {
	any, alt := false, m.anyAlt(i0, i1)
	for i := i0; i < i1; i++ {
		if m.has(i) {
			m.clear(i)
			any = true
		}
	}
	if any {
		punch(b.f, b.dataOff(i0, 0), (i1-i0)*b.bs)
	}
	if alt {
		punch(b.f, b.dataOff(i0, 1), (i1-i0)*b.bs)
	}
}

// modify rewrites the partial block i: fn changes its current content.
func (b *blockIO) modify(m *objMeta, i int64, fn func(blk []byte)) error {
	blk := make([]byte, b.bs)
	bad, err := b.readForUpdate(m, i, blk)
	if err != nil {
		return err
	}
	fn(blk)
	if bad {
		return b.put(m, i, blk, i)
	}
	return b.put(m, i, blk)
}
