package storagetest

import (
	"fmt"
	"maps"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// Damaged blocks, as chunkstore keeps them (its blocks are
// chunkstore.DefaultBlockSize here): MarkDamaged marks blocks; a write,
// zero or truncate that covers a whole block (aligned, within the size
// for a zero) clears its mark, a partial one keeps it; a read that
// touches a marked block fails with a *CorruptError, and so does Digest.

const blockSize = chunkstore.DefaultBlockSize

// MarkDamaged marks the blocks holding [off, off+length) of object damaged
// and zeroes them, growing the object to off+length if smaller and
// creating it (chunkstore.Batch.MarkDamaged); errors as Write.
func (b *Batch) MarkDamaged(pg PG, name string, off, length int64, version uint64) error {
	if err := b.check("mark damaged"); err != nil {
		return err
	}
	if err := checkRange(name, off, length); err != nil {
		return err
	}
	b.add(pg, name, func(d *pgData) {
		o := d.object(name)
		o.grow(off + length)
		if length > 0 {
			for i := off / blockSize; i <= (off+length-1)/blockSize; i++ {
				if o.bad == nil {
					o.bad = map[int64]bool{}
				}
				o.bad[i] = true
				clear(o.data[i*blockSize : min((i+1)*blockSize, int64(len(o.data)))])
			}
		}
		o.version = version
	})
	return nil
}

// unmark clears the marks of the blocks wholly inside [off, end); end
// math.MaxInt64 clears every block from off on (a truncate).
func (o *object) unmark(off, end int64) {
	for i := range o.bad {
		if i*blockSize >= off && (i+1)*blockSize <= end {
			delete(o.bad, i)
		}
	}
}

// damagedIn returns the first marked block that [off, end) touches, or -1.
func (o *object) damagedIn(off, end int64) int64 {
	end = min(end, int64(len(o.data)))
	first := int64(-1)
	for i := range o.bad {
		if i*blockSize < end && (i+1)*blockSize > off && (first < 0 || i < first) {
			first = i
		}
	}
	return first
}

func (o *object) cloneBad() map[int64]bool {
	if len(o.bad) == 0 {
		return nil
	}
	return maps.Clone(o.bad)
}

// corrupt is the error of a read of object's damaged block i.
func corrupt(op string, pg PG, name string, i int64) error {
	return &chunkstore.CorruptError{Op: op, PG: pg, Object: name, Block: i, Detail: "block marked damaged (storagetest)"}
}

// ReadSkippingDamage fills p with object's bytes from 0, damaged blocks as
// zeros, and returns their ranges in order (chunkstore's). Errors as Read.
func (s *MemStore) ReadSkippingDamage(pg PG, name string, p []byte) ([]chunkstore.Range, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objectLocked(pg, name)
	if o == nil {
		return nil, fmt.Errorf("storagetest: read pg %s object %q: %w", pg, name, chunkstore.ErrNotFound)
	}
	clear(p[copy(p, o.data):])
	end := min(int64(len(p)), int64(len(o.data)))
	var out []chunkstore.Range
	for i := int64(0); i*blockSize < end; i++ {
		if !o.bad[i] {
			continue
		}
		lo, hi := i*blockSize, min((i+1)*blockSize, end)
		clear(p[lo:hi])
		if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len == lo {
			out[n-1].Len += hi - lo
			continue
		}
		out = append(out, chunkstore.Range{Off: lo, Len: hi - lo})
	}
	return out, nil
}
