package chunkstore

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Batch collects writes to apply atomically and durably. Create it with
// Store.NewBatch, add operations, then Commit (or Discard). Operations apply
// in call order and each sees the ones before it. Operations copy what they
// are given: the caller may reuse its buffers once a call returns.
//
// A Batch belongs to one goroutine. It runs on a badger transaction; when the
// next write would make that transaction larger than badger allows (about 15%
// of MemTableSize in keys and small values; values in the value log count
// only their pointer), the transaction so far is committed (synced) and the
// batch goes on in a new one. Such a batch is durable in call order but not
// atomic: a crash can leave a prefix of its operations.
//
// If an operation fails after it began changing the batch, the batch is
// poisoned: later operations and Commit return that error and nothing more is
// committed. Argument errors (ErrInvalid, ErrTooLarge found before any change)
// leave the batch usable.
type Batch struct {
	s       *Store
	txn     *badger.Txn
	overlay map[PG]raftBounds // log bounds of the PGs this batch touched, as of the ops so far
	err     error             // sticky failure
	done    bool              // Commit or Discard called
	split   bool              // part of the batch is already committed
	mutated bool              // the running op changed the transaction
	bytes   int64             // key and value bytes in the open transaction
}

// NewBatch returns an empty batch. It never fails; a closed store makes the
// first operation fail with ErrClosed.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, overlay: make(map[PG]raftBounds)}
}

// apply runs one operation.
func (b *Batch) apply(fn func() error) error {
	if b.done {
		return fmt.Errorf("%w: batch already committed or discarded", ErrInvalid)
	}
	if b.err != nil {
		return b.err
	}
	if err := b.s.enter(); err != nil {
		return err
	}
	defer b.s.leave()
	if b.txn == nil {
		b.txn = b.s.db.NewTransaction(true)
	}
	b.mutated = false
	err := fn()
	if err != nil && b.mutated {
		b.err = err
	}
	return err
}

// Commit makes the batch durable: when it returns nil everything is synced
// to disk. Committing an empty batch is a no-op. Errors: the sticky error of
// a failed operation, ErrClosed, ErrInvalid (already committed), or badger's
// error. After a failed Commit the state of the batch's PGs on disk is
// unknown (see Batch about splits); the caller should treat the device as
// failed or reload.
func (b *Batch) Commit() error {
	if b.done {
		return fmt.Errorf("%w: batch already committed or discarded", ErrInvalid)
	}
	b.done = true
	if b.err != nil {
		b.abort()
		return b.err
	}
	if b.txn == nil {
		return nil
	}
	if err := b.s.enter(); err != nil {
		return err
	}
	defer b.s.leave()
	err := b.txn.Commit()
	b.txn = nil
	if err != nil {
		b.s.forgetBounds(b.overlay)
		return fmt.Errorf("chunkstore: commit: %w", badgerErr(err))
	}
	b.s.publishBounds(b.overlay)
	return nil
}

// Discard drops the uncommitted part of the batch. It is a no-op after
// Commit, so `defer b.Discard()` is safe. Parts already committed by a split
// stay committed.
func (b *Batch) Discard() {
	if b.done {
		return
	}
	b.done = true
	b.abort()
}

func (b *Batch) abort() {
	if b.txn != nil {
		// Discarding a transaction of a closed badger DB can block on its
		// stopped watermark goroutine; after Close the transaction is gone anyway.
		if b.s.enter() == nil {
			b.txn.Discard()
			b.s.leave()
		}
		b.txn = nil
	}
	if b.split || b.err != nil {
		b.s.forgetBounds(b.overlay)
	}
}

func (b *Batch) set(key, val []byte) error {
	// Badger counts a value-log value in a transaction by its pointer only,
	// but writes the whole value into the current value-log file's
	// mapping (twice ValueLogFileSize) at commit: a transaction carrying
	// more than that fails with EFAULT. Split well before.
	n := int64(len(key) + len(val))
	if b.bytes > 0 && b.bytes+n > b.s.cfg.ValueLogFileSize/2 {
		b.mutated = true
		if err := b.flush(); err != nil {
			return err
		}
	}
	b.bytes += n
	return b.modify(func(t *badger.Txn) error { return t.Set(key, val) })
}

func (b *Batch) del(key []byte) error {
	return b.modify(func(t *badger.Txn) error { return t.Delete(key) })
}

// modify applies f to the transaction, committing the transaction so far and
// retrying in a new one if badger says it is full.
func (b *Batch) modify(f func(*badger.Txn) error) error {
	b.mutated = true
	err := f(b.txn)
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return badgerErr(err)
	}
	if err := b.flush(); err != nil {
		return err
	}
	err = f(b.txn)
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("%w: one value does not fit in an empty badger transaction", ErrTooLarge)
	}
	return badgerErr(err)
}

// flush commits the transaction so far and starts a new one.
func (b *Batch) flush() error {
	err := b.txn.Commit()
	b.txn = b.s.db.NewTransaction(true)
	b.bytes = 0
	b.split = true
	if err != nil {
		return fmt.Errorf("chunkstore: commit (batch split): %w", badgerErr(err))
	}
	// The running op's PG still has its pre-op bounds in the overlay: right
	// for a crash now, and replaced when the batch commits or forgotten if it fails.
	b.s.publishBounds(b.overlay)
	b.s.mu.Lock()
	b.s.splits++
	b.s.mu.Unlock()
	return nil
}

// bounds returns pg's log bounds as this batch sees them.
func (b *Batch) bounds(pg PG) (raftBounds, error) {
	if bd, ok := b.overlay[pg]; ok {
		return bd, nil
	}
	return b.s.bounds(pg)
}
