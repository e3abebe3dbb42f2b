package chunkstore

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// ObjectInfo describes an object.
type ObjectInfo struct {
	Name    string
	Size    int64
	Version uint64
}

// Read fills p with object's bytes at off, from committed state. Holes and
// bytes past the object's size read as zeros. Errors: ErrNotFound (no such
// object), ErrCorrupt (a *CorruptError naming pg, object and block; the
// damaged bytes are never copied to p), ErrInvalid, ErrClosed. On error the
// content of p is undefined.
func (s *Store) Read(pg PG, object string, off int64, p []byte) error {
	_, err := s.read(pg, object, off, p, nil)
	return err
}

// Range is a byte range of an object: [Off, Off+Len).
type Range struct{ Off, Len int64 }

// ReadSkippingDamage fills p with object's bytes from offset 0, as Read
// does, but reads on past damaged blocks: their bytes read as zeros and
// their ranges are returned, in order (a replica copied from this one
// marks them damaged too: Batch.MarkDamaged). Errors: as Read, but for
// ErrCorrupt of a block; an object file missing altogether is still one.
func (s *Store) ReadSkippingDamage(pg PG, object string, p []byte) ([]Range, error) {
	var skipped []int64
	size, err := s.read(pg, object, 0, p, &skipped)
	if err != nil {
		return nil, err
	}
	bs := int64(s.cfg.BlockSize)
	var out []Range
	for _, i := range skipped {
		lo, hi := i*bs, min((i+1)*bs, int64(len(p)), size)
		if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len == lo {
			out[n-1].Len += hi - lo
			continue
		}
		out = append(out, Range{Off: lo, Len: hi - lo})
	}
	return out, nil
}

// read is Read; skipped, if not nil, collects the damaged blocks read as
// zeros instead of failing (blockIO.skipped). It returns the object's size.
func (s *Store) read(pg PG, object string, off int64, p []byte, skipped *[]int64) (int64, error) {
	l := loc{op: "read", pg: pg, object: object, block: -1}
	if err := validName(object); err != nil {
		return 0, l.wrap(err)
	}
	if off < 0 || off > MaxObjectSize {
		return 0, l.wrap(fmt.Errorf("%w: offset %d outside [0, %d]", ErrInvalid, off, MaxObjectSize))
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	id := newObjID(pg, object)
	mu := &s.locks[id.stripe()]
	mu.RLock()
	defer mu.RUnlock()
	m, found, err := s.cachedMeta(l)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, l.wrap(ErrNotFound)
	}
	return m.size, s.readObjectWith(id, &m, l, off, p, skipped)
}

// readObject reads an object whose meta is m; the caller holds its stripe lock.
func (s *Store) readObject(id objID, m *objMeta, l loc, off int64, p []byte) error {
	return s.readObjectWith(id, m, l, off, p, nil)
}

// readObjectWith is readObject; skipped, if not nil, collects damaged
// blocks read as zeros instead of failing (blockIO.skipped).
func (s *Store) readObjectWith(id objID, m *objMeta, l loc, off int64, p []byte, skipped *[]int64) error {
	if off >= m.size || m.empty() {
		clear(p)
		return nil
	}
	of, err := s.files.get(id.rel(), false, false)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return l.corrupt("object file missing (meta says blocks are stored)", err)
		}
		return l.wrap(err)
	}
	defer s.files.put(of)
	b := s.blockIO(id, of.f, l)
	b.skipped = skipped
	return b.readRange(m, off, p)
}

// Stat returns object's size and version. Errors: ErrNotFound, ErrCorrupt,
// ErrInvalid, ErrClosed.
func (s *Store) Stat(pg PG, object string) (ObjectInfo, error) {
	l := loc{op: "stat", pg: pg, object: object, block: -1}
	if err := validName(object); err != nil {
		return ObjectInfo{}, l.wrap(err)
	}
	if err := s.enter(); err != nil {
		return ObjectInfo{}, err
	}
	defer s.leave()
	mu := &s.locks[newObjID(pg, object).stripe()]
	mu.RLock()
	defer mu.RUnlock()
	m, found, err := s.cachedMeta(l)
	if err != nil {
		return ObjectInfo{}, err
	}
	if !found {
		return ObjectInfo{}, l.wrap(ErrNotFound)
	}
	return ObjectInfo{Name: object, Size: m.size, Version: m.version}, nil
}

// List returns pg's objects whose names start with prefix and sort after
// after, in name order, at most limit of them (0: no limit). Errors:
// ErrCorrupt, ErrClosed.
func (s *Store) List(pg PG, prefix string, after string, limit int) ([]ObjectInfo, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.flushMetasNow(); err != nil {
		return nil, err
	}
	var out []ObjectInfo
	err := s.db.View(func(txn *badger.Txn) error {
		return scanMeta(txn, pg, prefix, after, int64(s.cfg.BlockSize), func(name string, m objMeta) (bool, error) {
			out = append(out, ObjectInfo{Name: name, Size: m.size, Version: m.version})
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListPGs returns the PGs that have raft state or objects here, sorted by
// pool and number. Errors: ErrClosed.
func (s *Store) ListPGs() ([]PG, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.flushMetasNow(); err != nil { // PGs known only by their objects' metas
		return nil, err
	}
	seen := make(map[PG]struct{})
	err := s.db.View(func(txn *badger.Txn) error {
		for _, kind := range pgKinds {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kind}})
			for it.Seek([]byte{kind}); it.Valid(); {
				pg, ok := pgOfKey(it.Item().Key())
				if !ok || bytes.Equal(it.Item().Key(), raftKey(pg, raftTomb)) {
					it.Next() // a tomb alone is no PG held (DropPG)
					continue
				}
				seen[pg] = struct{}{}
				next := nextPGPrefix(kind, pg)
				if next == nil {
					break
				}
				it.Seek(next)
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, pg := range s.wal.PGs() {
		seen[PG{Pool: pg.Pool, Seq: pg.Seq}] = struct{}{}
	}
	out := make([]PG, 0, len(seen))
	for pg := range seen {
		out = append(out, pg)
	}
	slices.SortFunc(out, func(a, b PG) int {
		if a.Pool != b.Pool {
			return cmp.Compare(a.Pool, b.Pool)
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return out, nil
}

// cachedMeta returns l's object meta from the cache, the backlog or badger
// (filling the cache from badger). The caller holds the object's stripe
// lock.
func (s *Store) cachedMeta(l loc) (objMeta, bool, error) {
	if m, found, ok := s.metas.get(l.pg, l.object); ok {
		return m, found, nil
	}
	if m, found, ok := s.backlog.get(metaKeyT{l.pg, l.object}); ok {
		return m, found, nil
	}
	var m objMeta
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		m, found, err = readMeta(txn, l, int64(s.cfg.BlockSize))
		return err
	})
	if err != nil {
		return objMeta{}, false, err
	}
	s.metas.put(l.pg, l.object, m, found)
	return m, found, nil
}

// readMeta reads l's object meta in txn; found=false if there is none.
func readMeta(txn *badger.Txn, l loc, bs int64) (objMeta, bool, error) {
	p, found, err := get(txn, metaKey(l.pg, l.object), l)
	if err != nil || !found {
		return objMeta{}, false, err
	}
	m, err := decodeMeta(p, bs)
	if err != nil {
		return objMeta{}, false, l.corrupt(err.Error(), nil)
	}
	return m, true, nil
}

// scanMeta calls fn for pg's objects with prefix and name > after, in name
// order, until fn returns false.
func scanMeta(txn *badger.Txn, pg PG, prefix, after string, bs int64, fn func(string, objMeta) (bool, error)) error {
	base := metaKey(pg, "")
	it := txn.NewIterator(badger.IteratorOptions{Prefix: metaKey(pg, prefix), PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	seek := metaKey(pg, prefix)
	if after >= prefix {
		seek = append(metaKey(pg, after), 0)
	}
	for it.Seek(seek); it.Valid(); it.Next() {
		item := it.Item()
		name := string(item.Key()[len(base):])
		if name <= after || !strings.HasPrefix(name, prefix) {
			continue
		}
		l := loc{op: "list", pg: pg, object: name, block: -1}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return l.corrupt("value unreadable", err)
		}
		p, err := unseal(item.Key(), v)
		if err != nil {
			return l.corrupt(err.Error(), nil)
		}
		m, err := decodeMeta(p, bs)
		if err != nil {
			return l.corrupt(err.Error(), nil)
		}
		more, err := fn(name, m)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
