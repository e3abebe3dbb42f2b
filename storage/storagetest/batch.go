package storagetest

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// Batch collects changes to a MemStore and applies them at Commit, all at
// once under the store's lock. Operations see the earlier ones of the same
// batch (log bounds are tracked per batch; object changes apply in order).
//
// Each operation is recorded as primitive changes, the units a commit fault
// keeps a prefix of (a torn write of chunkstore's raft log keeps a prefix of
// its records): AppendEntries deletes the conflicting suffix from the top,
// then writes each entry; SetHardState, SetApplyState, CompactLog, Write,
// Truncate, Zero and Delete are one change each. Object changes and apply
// states that a commit keeps are still only durable at the next checkpoint
// (see MemStore).
type Batch struct {
	s    *MemStore
	ops  []change
	logs map[PG]bounds // log bounds of the PGs touched so far, as this batch sees them
	done bool
}

// change is one primitive change; object names the object it changes ("" for
// raft state).
type change struct {
	pg     PG
	object string
	apply  func(d *pgData)
}

func (b *Batch) check(op string) error {
	if b.done {
		return fmt.Errorf("storagetest: %s: %w: batch already committed or discarded", op, chunkstore.ErrInvalid)
	}
	return nil
}

func (b *Batch) add(pg PG, object string, f func(d *pgData)) {
	b.ops = append(b.ops, change{pg: pg, object: object, apply: f})
}

func (b *Batch) bounds(pg PG) bounds {
	if bd, ok := b.logs[pg]; ok {
		return bd
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	return b.s.boundsLocked(pg)
}

// AppendPlaced is AppendEntries: a MemStore keeps every entry whole, which
// chunkstore.Batch.AppendPlaced allows. An entry given in two parts
// (chunkstore.Place.Data) is joined.
func (b *Batch) AppendPlaced(pg PG, first uint64, ents [][]byte, places []chunkstore.Place) error {
	// The places chunkstore refuses are refused here too, so that an OSD
	// that makes one fails in the simulation.
	if err := chunkstore.CheckPlaces(pg, ents, places); err != nil {
		return err
	}
	whole, cloned := ents, false
	for _, p := range places {
		if p.Data == nil {
			continue
		}
		if !cloned {
			whole, cloned = slices.Clone(ents), true
		}
		whole[p.Entry] = p.Join(ents[p.Entry])
	}
	if err := b.AppendEntries(pg, first, whole); err != nil {
		return err
	}
	for _, p := range places {
		i, at := first+uint64(p.Entry), placed{object: p.Object, offset: p.Offset, lo: p.Lo, hi: p.Hi}
		b.add(pg, "", func(d *pgData) {
			if d.placed == nil {
				d.placed = map[uint64]placed{}
			}
			d.placed[i] = at
		})
	}
	return nil
}

// AppendEntries stores ents as entries first, first+1, ... of pg and deletes
// the stored entries at or after first that it does not overwrite. Errors
// wrap chunkstore.ErrInvalid (first == 0, below the first stored index, or a
// gap after the last index).
func (b *Batch) AppendEntries(pg PG, first uint64, ents [][]byte) error {
	if err := b.check("append entries"); err != nil || len(ents) == 0 {
		return err
	}
	if first == 0 {
		return fmt.Errorf("storagetest: append entries pg %s: %w: index 0", pg, chunkstore.ErrInvalid)
	}
	bd := b.bounds(pg)
	lo, last := max(bd.first, 1), bd.last
	if bd.first == 0 {
		last = 0
	}
	if first < lo || first > last+1 {
		return fmt.Errorf("storagetest: append entries pg %s: %w: first %d outside [%d, %d]", pg, chunkstore.ErrInvalid, first, lo, last+1)
	}
	if bd.first != 0 {
		for i := bd.last; i >= first && i >= bd.first; i-- {
			b.add(pg, "", func(d *pgData) { delete(d.ents, i); delete(d.placed, i) })
		}
	}
	for k, e := range ents {
		i, e := first+uint64(k), bytes.Clone(e)
		b.add(pg, "", func(d *pgData) { d.ents[i] = e; delete(d.placed, i) })
	}
	if bd.first == 0 {
		bd.first = first
	}
	bd.last = first + uint64(len(ents)) - 1
	b.logs[pg] = bd
	return nil
}

// SetHardState stores pg's hard state.
func (b *Batch) SetHardState(pg PG, hs []byte) error {
	if err := b.check("set hard state"); err != nil {
		return err
	}
	hs = bytes.Clone(hs)
	b.add(pg, "", func(d *pgData) { d.hard = hs })
	return nil
}

// SetApplyState stores pg's apply state.
func (b *Batch) SetApplyState(pg PG, st []byte) error {
	if err := b.check("set apply state"); err != nil {
		return err
	}
	st = bytes.Clone(st)
	b.add(pg, "", func(d *pgData) { d.apply = st })
	return nil
}

// CompactLog asks for pg's entries below upTo to be deleted at the next
// checkpoint (after the apply state set with it is durable).
func (b *Batch) CompactLog(pg PG, upTo uint64) error {
	if err := b.check("compact log"); err != nil {
		return err
	}
	b.add(pg, "", func(d *pgData) { d.pendCompact = max(d.pendCompact, upTo) })
	return nil
}

// Write writes data at off into object, creating it; the size becomes
// max(size, off+len(data)). Errors wrap chunkstore.ErrInvalid or ErrTooLarge.
func (b *Batch) Write(pg PG, name string, off int64, data []byte, version uint64) error {
	if err := b.check("write"); err != nil {
		return err
	}
	if err := checkRange(name, off, int64(len(data))); err != nil {
		return err
	}
	data = bytes.Clone(data)
	b.add(pg, name, func(d *pgData) {
		o := d.object(name)
		o.grow(off + int64(len(data)))
		copy(o.data[off:], data)
		o.unmark(off, off+int64(len(data)))
		o.version = version
	})
	return nil
}

// ApplyPlaced writes the data of the entry at index version of pg, which
// must be stored with a place (AppendPlaced) that writes n bytes at off of
// object: what chunkstore does by flipping slots. Errors wrap
// chunkstore.ErrDamagedEntry when it is not such an entry, or ErrInvalid.
func (b *Batch) ApplyPlaced(pg PG, name string, off, n int64, version uint64) error {
	if err := b.check("apply placed"); err != nil {
		return err
	}
	if err := checkRange(name, off, n); err != nil {
		return err
	}
	b.s.mu.Lock()
	var data []byte
	if d := b.s.pgs[pg]; d != nil {
		if p, ok := d.placed[version]; ok && p.object == name && p.offset == off && int64(p.hi-p.lo) == n {
			data = bytes.Clone(d.ents[version][p.lo:p.hi])
		}
	}
	b.s.mu.Unlock()
	if data == nil {
		return fmt.Errorf("storagetest: apply placed pg %s entry %d: %w: not a stored placed write of %d bytes at %d of %q",
			pg, version, chunkstore.ErrDamagedEntry, n, off, name)
	}
	return b.Write(pg, name, off, data, version)
}

// Truncate sets object's size, creating it; errors as Write.
func (b *Batch) Truncate(pg PG, name string, size int64, version uint64) error {
	if err := b.check("truncate"); err != nil {
		return err
	}
	if err := checkRange(name, size, 0); err != nil {
		return err
	}
	b.add(pg, name, func(d *pgData) {
		o := d.object(name)
		if size < int64(len(o.data)) {
			o.data = o.data[:size:size]
			o.unmark((size+blockSize-1)/blockSize*blockSize, math.MaxInt64)
		}
		o.grow(size)
		o.version = version
	})
	return nil
}

// Zero zeroes [off, off+length) of object, growing it to off+length if
// smaller and creating it; errors as Write.
func (b *Batch) Zero(pg PG, name string, off, length int64, version uint64) error {
	if err := b.check("zero"); err != nil {
		return err
	}
	if err := checkRange(name, off, length); err != nil {
		return err
	}
	b.add(pg, name, func(d *pgData) {
		o := d.object(name)
		o.unmark(off, min(off+length, int64(len(o.data))))
		o.grow(off + length)
		clear(o.data[off : off+length])
		o.version = version
	})
	return nil
}

// Delete removes object; a missing object is not an error.
func (b *Batch) Delete(pg PG, name string) error {
	if err := b.check("delete"); err != nil {
		return err
	}
	if err := validName(name); err != nil {
		return err
	}
	b.add(pg, name, func(d *pgData) { delete(d.objs, name) })
	return nil
}

// Commit applies the batch atomically, unless a fault says otherwise (see
// MemStore.SetCommitFault and SetLoseWrites). Errors: ErrCrash (injected),
// chunkstore.ErrInvalid (already committed or discarded).
func (b *Batch) Commit() error {
	if err := b.check("commit"); err != nil {
		return err
	}
	b.done = true
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := b.ops
	if s.loseWrite != nil {
		ops = nil
		for _, c := range b.ops {
			if c.object == "" || !s.loseWrite(c.pg, c.object) {
				ops = append(ops, c)
			}
		}
	}
	keep, crash := len(ops), false
	if s.commitFault != nil {
		keep, crash = s.commitFault(len(ops))
		keep = max(0, min(keep, len(ops)))
	}
	for _, c := range ops[:keep] {
		c.apply(s.pgLocked(c.pg))
	}
	if crash {
		return ErrCrash
	}
	s.commits++
	if s.ckptEvery > 0 && s.commits%s.ckptEvery == 0 {
		s.checkpointLocked()
	}
	return nil
}

// Discard drops the batch; a no-op after Commit.
func (b *Batch) Discard() { b.done = true }

func (d *pgData) object(name string) *object {
	o := d.objs[name]
	if o == nil {
		o = &object{}
		d.objs[name] = o
	}
	return o
}

// grow extends the object with zeros to size n if it is smaller.
func (o *object) grow(n int64) {
	if n > int64(len(o.data)) {
		o.data = append(o.data, make([]byte, n-int64(len(o.data)))...)
	}
}
