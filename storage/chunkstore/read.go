package chunkstore

import (
	"fmt"
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
	l := loc{op: "read", pg: pg, object: object, block: -1}
	if err := validName(object); err != nil {
		return l.wrap(err)
	}
	if off < 0 {
		return l.wrap(fmt.Errorf("%w: negative offset %d", ErrInvalid, off))
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.db.View(func(txn *badger.Txn) error {
		m, found, err := readMeta(txn, l, int64(s.cfg.BlockSize))
		if err != nil {
			return err
		}
		if !found {
			return l.wrap(ErrNotFound)
		}
		if off >= m.size { // also keeps off+len(p) from overflowing below
			clear(p)
			return nil
		}
		return readRange(txn, l, &m, off, p, int64(s.cfg.BlockSize))
	})
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
	var info ObjectInfo
	err := s.db.View(func(txn *badger.Txn) error {
		m, found, err := readMeta(txn, l, int64(s.cfg.BlockSize))
		if err != nil {
			return err
		}
		if !found {
			return l.wrap(ErrNotFound)
		}
		info = ObjectInfo{Name: object, Size: m.size, Version: m.version}
		return nil
	})
	return info, err
}

// List returns pg's objects whose names start with prefix and sort after
// after, in name order, at most limit of them (0: no limit). Errors:
// ErrCorrupt, ErrClosed.
func (s *Store) List(pg PG, prefix string, after string, limit int) ([]ObjectInfo, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
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
	seen := make(map[PG]struct{})
	err := s.db.View(func(txn *badger.Txn) error {
		for _, kind := range pgKinds {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kind}})
			for it.Seek([]byte{kind}); it.Valid(); {
				pg, ok := pgOfKey(it.Item().Key())
				if !ok {
					it.Next()
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
	out := make([]PG, 0, len(seen))
	for pg := range seen {
		out = append(out, pg)
	}
	slices.SortFunc(out, func(a, b PG) int {
		if a.Pool != b.Pool {
			return cmpU32(a.Pool, b.Pool)
		}
		return cmpU32(a.Seq, b.Seq)
	})
	return out, nil
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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

// readRange fills p with the object's bytes at off.
func readRange(txn *badger.Txn, l loc, m *objMeta, off int64, p []byte, bs int64) error {
	end := off + int64(len(p))
	for pos := off; pos < end; {
		i := pos / bs
		lo := pos - i*bs
		n := min(bs-lo, end-pos)
		dst := p[pos-off : pos-off+n]
		if pos >= m.size || !m.has(i) {
			clear(dst)
		} else if err := readBlockPart(txn, l, i, lo, dst, bs); err != nil {
			return err
		}
		pos += n
	}
	if m.size < end { // stored blocks are zero past size; make sure
		clear(p[max(m.size-off, 0):])
	}
	return nil
}

// readBlockInto fills blk (one block) with block i's content.
func readBlockInto(txn *badger.Txn, l loc, m *objMeta, i int64, blk []byte, bs int64) error {
	if !m.has(i) {
		clear(blk)
		return nil
	}
	return readBlockPart(txn, l, i, 0, blk, bs)
}

// readBlockPart copies block i's bytes [lo, lo+len(dst)) into dst. The
// caller has checked that the meta marks the block stored, so a missing key
// is corruption.
func readBlockPart(txn *badger.Txn, l loc, i, lo int64, dst []byte, bs int64) error {
	bl := l.withBlock(i)
	data, found, err := get(txn, blockKey(blockPrefix(l.pg, l.object), i), bl)
	if err != nil {
		return err
	}
	if !found {
		return bl.corrupt("block missing (meta says stored)", nil)
	}
	if int64(len(data)) > bs {
		return bl.corrupt(fmt.Sprintf("block holds %d bytes, block size is %d", len(data), bs), nil)
	}
	n := 0
	if lo < int64(len(data)) {
		n = copy(dst, data[lo:])
	}
	clear(dst[n:])
	return nil
}
