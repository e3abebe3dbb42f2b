package chunkstore

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/tsumiki-storage/tsumiki/storage/wal"
)

// Batch collects one cycle's changes. Create it with Store.NewBatch, add
// operations, then Commit (or Discard).
//
// Commit first writes the raft records (entries, hard states) to the WAL
// with one fdatasync: those are durable when Commit returns. Then it applies
// the object operations, in call order, to the object files and the meta;
// these reach the disk at the next checkpoint, and SetApplyState values
// become the durable apply state only then. After a crash the owner
// re-applies the log from the durable apply state; re-applying is safe
// because every operation sets the bytes, size and version it touches to
// values that depend only on the operation (see Recover for the one
// exception, a partial-block rewrite of a torn block).
//
// Object operations keep a reference to the data they are given until
// Commit or Discard returns: the caller must not modify it before.
// Argument errors (ErrInvalid, ErrTooLarge) are returned by the call and
// leave the batch usable; errors found while applying are returned by
// Commit.
//
// A Batch belongs to one goroutine.
type Batch struct {
	s       *Store
	wal     *wal.Batch       // from the store's spare (see NewBatch)
	logs    map[PG][2]uint64 // first and last log index per PG as of the appends so far
	ops     []queuedOp
	apply   map[PG][]byte
	compact map[PG]uint64
	bytes   int64 // object bytes written, for the checkpoint trigger
	done    bool

	truncs    map[PG]uint64 // lowest index an append replaced, per PG
	placed    []*placement  // placements made by AppendPlaced
	syncFiles []*objFile    // their files: synced before the WAL commit, put after
	left      []leftClaim   // slots blocks left while applying (placing stores only)
	lost      []*placement  // conversions that found the data damaged: kept as heads (rewriteInline)
	failed    error         // an AppendPlaced that failed half-way: Commit refuses
}

type opKind uint8

const (
	opWrite opKind = iota + 1
	opTruncate
	opZero
	opDelete
	opMarkDamaged
)

type queuedOp struct {
	kind    opKind
	id      objID
	off, n  int64
	data    []byte
	version uint64
	// placedOnly: ApplyPlaced, no data; it must apply as a flip.
	placedOnly bool
}

// NewBatch returns an empty batch. It never fails; a closed store makes
// Commit fail with ErrClosed.
func (s *Store) NewBatch() *Batch {
	s.mu.Lock()
	wb := s.spareWAL
	s.spareWAL = nil
	s.mu.Unlock()
	if wb == nil {
		wb = new(wal.Batch)
	}
	return &Batch{s: s, wal: wb}
}

// maxSpareWAL bounds the WAL batch buffer kept for reuse. Under 1 MiB
// client writes at queue depth 16 a node-loop cycle's batch passes 8 MiB;
// with an 8 MiB bound each such batch grew a new buffer from nothing
// (zeroing and copying it as it doubled), 9 % of the OSDs' CPU. With 32 MiB
// sequential writes went from 176 to 195 MB/s (three alternating pairs) and
// the object bench's peak RSS per OSD stayed at 169-203 MiB.
const maxSpareWAL = 32 << 20

// release ends the batch's placements' flight (stale: they were never
// logged, so reclaim may punch their slots; otherwise claims cover them,
// or a failed Commit stops the OSD) and hands the WAL batch back for the
// next Batch to reuse.
func (b *Batch) release(stale bool) {
	if len(b.placed) > 0 {
		b.s.placeMu.Lock()
		b.s.placeLanded(b.placed, stale)
		b.s.placeMu.Unlock()
	}
	for _, of := range b.syncFiles {
		b.s.files.put(of)
	}
	b.syncFiles, b.placed = nil, nil
	if b.wal == nil {
		return
	}
	if b.wal.Cap() > maxSpareWAL {
		b.wal = nil // a rare big batch: do not hold its buffer for ever
		return
	}
	b.wal.Reset()
	b.s.mu.Lock()
	b.s.spareWAL = b.wal
	b.s.mu.Unlock()
	b.wal = nil
}

func (b *Batch) usable() error {
	if b.done {
		return fmt.Errorf("%w: batch already committed or discarded", ErrInvalid)
	}
	if b.failed != nil {
		return fmt.Errorf("chunkstore: batch unusable after a failed append: %w", b.failed)
	}
	return nil
}

// Commit makes the batch's raft records durable and applies its object
// operations (see Batch). Committing an empty batch is a no-op. Errors:
// ErrClosed, ErrInvalid (already committed), ErrCorrupt (a block to rewrite
// is damaged), or the WAL's, file system's or badger's error. After a failed
// Commit the state of the batch's PGs is unknown; the caller should stop
// and restart from the durable state.
func (b *Batch) Commit() error {
	if err := b.usable(); err != nil {
		if b.failed != nil && !b.done {
			b.done = true
			b.release(false)
		}
		return err
	}
	b.done = true
	defer b.release(false)
	s := b.s
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.placeMu.Lock()
	flips, convert := b.planPlacements()
	if len(b.ops) > 0 {
		b.spoilPreplaced()
		defer b.doneApplying() // after applyOps
	}
	err := b.checkPlacedOnly(flips)
	if err == nil {
		err = b.rewriteInline(convert)
	}
	if err == nil {
		err = b.syncPlaced()
	}
	if err == nil && !b.wal.Empty() {
		if err = s.wal.Commit(b.wal); err != nil {
			err = walErr("commit", PG{}, err)
		}
	}
	if err == nil {
		b.notePlacements(convert)
	}
	s.placeMu.Unlock()
	if err != nil {
		return err
	}
	if len(b.ops) > 0 {
		if err := b.applyOps(flips); err != nil {
			return err
		}
	}
	if testHookApplied != nil {
		testHookApplied()
	}
	b.noteApplied()
	if len(b.apply) > 0 || len(b.compact) > 0 || b.bytes > 0 {
		s.notePending(b.apply, b.compact, b.bytes)
	}
	return nil
}

// testHookApplied, when set (tests), runs in Commit between applying the
// operations and recording their left claims.
var testHookApplied func()

// Discard drops the batch. It is a no-op after Commit, so `defer
// b.Discard()` is safe.
func (b *Batch) Discard() {
	if !b.done {
		b.done = true
		b.release(true) // its placements were written, never logged
	}
}

// applyOps runs the object operations under their objects' locks and
// publishes their metas to the cache and the backlog (badger gets them at
// the next checkpoint; metabacklog.go).
func (b *Batch) applyOps(flips map[int]*placement) error {
	s := b.s
	var stripes []int
	for _, op := range b.ops {
		stripes = append(stripes, op.id.stripe())
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.locks[i].Lock()
	}
	defer func() {
		for _, i := range stripes {
			s.locks[i].Unlock()
		}
	}()
	t := &metaTxn{db: s.db, metas: map[metaKeyT]metaItem{}} // txn: opened on a cache miss (txnMeta)
	defer func() {
		if t.txn != nil {
			t.txn.Discard()
		}
	}()
	for i := range b.ops {
		op := &b.ops[i]
		left, err := s.applyOp(t, op, flips[i])
		if err != nil {
			s.forgetMetas(t)
			return err
		}
		if len(left) > 0 {
			b.left = append(b.left, leftClaim{pg: op.id.pg, name: op.id.name, index: b.leftIndex(op), runs: left})
		}
	}
	for k, it := range t.metas { // still under the stripe locks
		s.metas.put(k.pg, k.name, it.m, it.found)
		s.backlog.put(k, it)
	}
	return nil
}

// metaTxn is a badger transaction: read-only while a batch applies (metas
// are the batch's own, then cached, then the backlog's, then badger's),
// read-write when the backlog is flushed, where it commits and continues in
// a new one when it outgrows badger's limit. Durability comes from the WAL
// and checkpoints, so a split does not weaken anything.
type metaTxn struct {
	db    *badger.DB
	txn   *badger.Txn
	metas map[metaKeyT]metaItem // metas this batch set, for the cache
}

// forgetMetas drops from the cache what a failed batch touched (its files
// may be changed; the OSD stops after a failed Commit).
func (s *Store) forgetMetas(t *metaTxn) {
	for k := range t.metas {
		s.metas.drop(k.pg, k.name)
	}
}

func (t *metaTxn) modify(f func(*badger.Txn) error) error {
	err := f(t.txn)
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return badgerErr(err)
	}
	if err := t.txn.Commit(); err != nil {
		return fmt.Errorf("chunkstore: commit meta (split): %w", badgerErr(err))
	}
	t.txn = t.db.NewTransaction(true)
	return badgerErr(f(t.txn))
}

func (t *metaTxn) set(k, v []byte) error {
	return t.modify(func(x *badger.Txn) error { return x.Set(k, v) })
}

func (t *metaTxn) del(k []byte) error {
	return t.modify(func(x *badger.Txn) error { return x.Delete(k) })
}
