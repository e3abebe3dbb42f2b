package chunkstore

import (
	"fmt"
	"sync"
)

// Object metas are written behind. Commit applies an operation to the
// object's file and its meta in memory (the meta cache and this backlog);
// badger gets the meta at the next checkpoint, before the checkpoint syncs
// badger and records the apply states (checkpoint.go), or before a listing
// or digest scans it. Writing one badger entry per operation cost about a
// tenth of an OSD's CPU on small writes (each a new version in the LSM,
// flushed and compacted later); behind, an object written many times
// between checkpoints costs one entry. Crash safety is unchanged: badger's
// meta was never synced between checkpoints, and a restarted OSD re-applies
// the log from the last checkpoint over whatever meta reached the disk.

// metaBacklog holds metas applied but not yet written to badger. Readers
// look here after the cache and before badger (cachedMeta, txnMeta), so a
// meta evicted from the cache is never read stale from badger.
type metaBacklog struct {
	mu       sync.Mutex            // guards the following
	pending  map[metaKeyT]metaItem // applied since the last take
	flushing map[metaKeyT]metaItem // taken by the flush in progress
}

func newMetaBacklog() *metaBacklog {
	return &metaBacklog{pending: map[metaKeyT]metaItem{}}
}

// put records an applied meta (found=false: deleted).
func (b *metaBacklog) put(k metaKeyT, it metaItem) {
	b.mu.Lock()
	b.pending[k] = it
	b.mu.Unlock()
}

// get returns the newest unwritten meta of k (a copy), if any.
func (b *metaBacklog) get(k metaKeyT) (objMeta, bool, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	it, ok := b.pending[k]
	if !ok {
		it, ok = b.flushing[k]
	}
	if !ok {
		return objMeta{}, false, false
	}
	return it.m.clone(), it.found, true
}

// dropPG forgets pg's metas (DropPG; no flush runs meanwhile).
func (b *metaBacklog) dropPG(pg PG) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.pending {
		if k.pg == pg {
			delete(b.pending, k)
		}
	}
	for k := range b.flushing {
		if k.pg == pg {
			delete(b.flushing, k)
		}
	}
}

func (b *metaBacklog) empty() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending) == 0
}

// take moves the pending metas to flushing and returns them. One flush at a
// time (the store's ckptMu).
func (b *metaBacklog) take() map[metaKeyT]metaItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushing, b.pending = b.pending, map[metaKeyT]metaItem{}
	return b.flushing
}

// done ends the flush: written, the metas are in badger; not written, they
// go back to pending unless a newer one is there.
func (b *metaBacklog) done(written bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !written {
		for k, it := range b.flushing {
			if _, newer := b.pending[k]; !newer {
				b.pending[k] = it
			}
		}
	}
	b.flushing = nil
}

// flushMetas writes the backlog to badger (not synced). The caller holds
// ckptMu. Errors: badger's.
func (s *Store) flushMetas() error {
	items := s.backlog.take()
	if len(items) == 0 {
		s.backlog.done(true)
		return nil
	}
	t := &metaTxn{db: s.db, txn: s.db.NewTransaction(true)}
	defer func() { t.txn.Discard() }()
	err := func() error {
		for k, it := range items {
			key := metaKey(k.pg, k.name)
			if !it.found {
				if err := t.del(key); err != nil {
					return err
				}
				continue
			}
			if err := t.set(key, seal(key, it.m.encode())); err != nil {
				return err
			}
		}
		if err := t.txn.Commit(); err != nil {
			return fmt.Errorf("chunkstore: write metas: %w", badgerErr(err))
		}
		return nil
	}()
	s.backlog.done(err == nil)
	return err
}

// flushMetasNow writes the backlog to badger for a scan of it (List,
// Digest), serialized with checkpoints.
func (s *Store) flushMetasNow() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	return s.flushMetas()
}
