package chunkstore

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Write writes data at off into object of pg, creating the object if it is
// missing; its size becomes max(size, off+len(data)) and its version
// version. Only the touched blocks are read and rewritten; a block left all
// zeros is stored as a hole. Errors: ErrInvalid (bad name, negative offset),
// ErrTooLarge (off+len(data) > MaxObjectSize), ErrCorrupt (a block to
// rewrite is damaged), ErrClosed.
func (b *Batch) Write(pg PG, object string, off int64, data []byte, version uint64) error {
	l := loc{op: "write", pg: pg, object: object, block: -1}
	if err := checkRange(l, off, int64(len(data))); err != nil {
		return err
	}
	return b.apply(func() error {
		m, _, err := b.meta(l)
		if err != nil {
			return err
		}
		end := off + int64(len(data))
		if end > m.size {
			m.resize(end, b.bs())
		}
		err = b.eachBlock(off, end, func(i, lo, hi int64) error {
			src := data[i*b.bs()+lo-off : i*b.bs()+hi-off]
			if lo == 0 && hi == b.bs() {
				return b.putBlock(l, &m, i, src)
			}
			blk, err := b.readBlock(l, &m, i)
			if err != nil {
				return err
			}
			copy(blk[lo:hi], src)
			return b.putBlock(l, &m, i, blk)
		})
		if err != nil {
			return err
		}
		m.version = version
		return b.putMeta(l, &m)
	})
}

// Truncate sets object's size, creating it if missing: blocks past size are
// deleted and the partial last block is zeroed past size. Errors as Write.
func (b *Batch) Truncate(pg PG, object string, size int64, version uint64) error {
	l := loc{op: "truncate", pg: pg, object: object, block: -1}
	if err := checkRange(l, size, 0); err != nil {
		return err
	}
	return b.apply(func() error {
		m, _, err := b.meta(l)
		if err != nil {
			return err
		}
		if size < m.size {
			for i := nblocks(size, b.bs()); i < nblocks(m.size, b.bs()); i++ {
				if err := b.dropBlock(l, &m, i); err != nil {
					return err
				}
			}
			if tail := size % b.bs(); tail != 0 && m.has(size/b.bs()) {
				i := size / b.bs()
				blk, err := b.readBlock(l, &m, i)
				if err != nil {
					return err
				}
				clear(blk[tail:])
				if err := b.putBlock(l, &m, i, blk); err != nil {
					return err
				}
			}
		}
		m.resize(size, b.bs())
		m.version = version
		return b.putMeta(l, &m)
	})
}

// Zero punches [off, off+length) of object: whole blocks become holes,
// partial blocks are zeroed. The size grows to off+length if smaller; the
// object is created if missing. Errors as Write.
func (b *Batch) Zero(pg PG, object string, off, length int64, version uint64) error {
	l := loc{op: "zero", pg: pg, object: object, block: -1}
	if err := checkRange(l, off, length); err != nil {
		return err
	}
	return b.apply(func() error {
		m, _, err := b.meta(l)
		if err != nil {
			return err
		}
		// Only blocks below the old size can be stored.
		err = b.eachBlock(off, min(off+length, m.size), func(i, lo, hi int64) error {
			if !m.has(i) {
				return nil
			}
			if lo == 0 && hi == b.bs() {
				return b.dropBlock(l, &m, i)
			}
			blk, err := b.readBlock(l, &m, i)
			if err != nil {
				return err
			}
			clear(blk[lo:hi])
			return b.putBlock(l, &m, i, blk)
		})
		if err != nil {
			return err
		}
		if end := off + length; end > m.size {
			m.resize(end, b.bs())
		}
		m.version = version
		return b.putMeta(l, &m)
	})
}

// Delete removes object and its blocks; a missing object is not an error.
// Errors: ErrInvalid (bad name), ErrCorrupt (its meta), ErrClosed.
func (b *Batch) Delete(pg PG, object string) error {
	l := loc{op: "delete", pg: pg, object: object, block: -1}
	if err := validName(object); err != nil {
		return l.wrap(err)
	}
	return b.apply(func() error {
		m, found, err := b.meta(l)
		if err != nil || !found {
			return err
		}
		for i := int64(0); i < nblocks(m.size, b.bs()); i++ {
			if err := b.dropBlock(l, &m, i); err != nil {
				return err
			}
		}
		return b.del(metaKey(pg, object))
	})
}

// DeletePG removes everything of pg: objects, blocks and raft state. A large
// PG splits the batch (see Batch). Errors: ErrClosed, badger's error.
func (b *Batch) DeletePG(pg PG) error {
	return b.apply(func() error {
		for _, kind := range pgKinds {
			if err := b.deletePrefix(pgPrefix(kind, pg, 0)); err != nil {
				return fmt.Errorf("chunkstore: delete pg %s: %w", pg, err)
			}
		}
		b.overlay[pg] = raftBounds{}
		return nil
	})
}

// deletePrefix deletes every key with prefix, a chunk of keys at a time (an
// update transaction allows one iterator, and writes must wait until it closes).
func (b *Batch) deletePrefix(prefix []byte) error {
	const chunk = 4096
	seek := prefix
	for {
		var keys [][]byte
		it := b.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		for it.Seek(seek); it.Valid() && len(keys) < chunk; it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		if len(keys) == 0 {
			return nil
		}
		for _, k := range keys {
			if err := b.del(k); err != nil {
				return err
			}
		}
		seek = append(bytes.Clone(keys[len(keys)-1]), 0)
	}
}

func (b *Batch) bs() int64 { return int64(b.s.cfg.BlockSize) }

// eachBlock calls fn for every block that [off, end) touches, with the
// touched byte range [lo, hi) inside the block.
func (b *Batch) eachBlock(off, end int64, fn func(i, lo, hi int64) error) error {
	bs := b.bs()
	if end <= off {
		return nil
	}
	for i := off / bs; i*bs < end; i++ {
		lo, hi := max(off-i*bs, 0), min(end-i*bs, bs)
		if err := fn(i, lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// meta reads l's object meta as the batch sees it; a missing object yields
// an empty meta and found=false.
func (b *Batch) meta(l loc) (objMeta, bool, error) {
	m, found, err := readMeta(b.txn, l, b.bs())
	if err != nil {
		return objMeta{}, false, err
	}
	return m, found, nil
}

func (b *Batch) putMeta(l loc, m *objMeta) error {
	k := metaKey(l.pg, l.object)
	return b.set(k, seal(k, m.encode()))
}

// readBlock returns a new block-sized buffer with block i's current content.
func (b *Batch) readBlock(l loc, m *objMeta, i int64) ([]byte, error) {
	blk := make([]byte, b.bs())
	if err := readBlockInto(b.txn, l, m, i, blk, b.bs()); err != nil {
		return nil, err
	}
	return blk, nil
}

// putBlock stores data (at most one block) as block i, trimmed of trailing
// zeros; an all-zero block becomes a hole.
func (b *Batch) putBlock(l loc, m *objMeta, i int64, data []byte) error {
	data = trimZeros(data)
	if len(data) == 0 {
		return b.dropBlock(l, m, i)
	}
	k := blockKey(blockPrefix(l.pg, l.object), i)
	if err := b.set(k, seal(k, data)); err != nil {
		return err
	}
	m.set(i)
	return nil
}

// dropBlock makes block i a hole.
func (b *Batch) dropBlock(l loc, m *objMeta, i int64) error {
	if !m.has(i) {
		return nil
	}
	if err := b.del(blockKey(blockPrefix(l.pg, l.object), i)); err != nil {
		return err
	}
	m.clear(i)
	return nil
}

// checkRange validates the object name and a byte range [off, off+n).
func checkRange(l loc, off, n int64) error {
	if err := validName(l.object); err != nil {
		return l.wrap(err)
	}
	if off < 0 || n < 0 {
		return l.wrap(fmt.Errorf("%w: negative offset or length (%d, %d)", ErrInvalid, off, n))
	}
	if n > MaxObjectSize || off > MaxObjectSize-n {
		return l.wrap(fmt.Errorf("%w: range [%d, +%d) passes the object size limit %d", ErrTooLarge, off, n, MaxObjectSize))
	}
	return nil
}
