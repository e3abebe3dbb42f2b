package chunkstore

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// digestChunk is how much object content Digest reads at a time.
const digestChunk = 1 << 20

// Digest hashes, from one consistent read view, every object's name, size,
// version and logical content (holes read as zeros, so a hole and stored
// zeros digest the same). It also returns the apply state read in the same
// view (nil if never set), which is not hashed: replicas record their own
// log compaction points in it, so healthy replicas differ there. Replicas
// at the same applied index must have equal sums; scrub compares them. It
// also returns the number of objects. Errors: ErrCorrupt (a
// *CorruptError naming the damaged object and block), ErrClosed.
//
// Layout hashed (SHA-256): "chunkstore-digest-v2", then per object in name order: u32 len(name), name, u64 size, u64 version,
// size content bytes.
func (s *Store) Digest(pg PG) (apply []byte, sum [32]byte, objects int, err error) {
	if err := s.enter(); err != nil {
		return nil, sum, 0, err
	}
	defer s.leave()
	bs := int64(s.cfg.BlockSize)
	h := sha256.New()
	// Digest one applied state: no batch applies meanwhile (the OSD
	// applies in one loop, so this briefly stalls its applies).
	s.applyMu.RLock()
	defer s.applyMu.RUnlock()
	if err := s.flushMetasNow(); err != nil {
		return nil, sum, 0, err
	}
	s.mu.Lock()
	apply = s.pending[pg].apply
	if apply == nil {
		apply = s.durable[pg]
	}
	apply = append([]byte(nil), apply...)
	s.mu.Unlock()
	err = s.db.View(func(txn *badger.Txn) error {
		h.Write([]byte("chunkstore-digest-v2"))
		buf := make([]byte, digestChunk)
		return scanMeta(txn, pg, "", "", bs, func(name string, m objMeta) (bool, error) {
			objects++
			var hdr []byte
			hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(name)))
			hdr = append(hdr, name...)
			hdr = binary.BigEndian.AppendUint64(hdr, uint64(m.size))
			hdr = binary.BigEndian.AppendUint64(hdr, m.version)
			h.Write(hdr)
			l := loc{op: "digest", pg: pg, object: name, block: -1}
			for off := int64(0); off < m.size; off += digestChunk {
				p := buf[:min(digestChunk, m.size-off)]
				id := newObjID(pg, name)
				s.locks[id.stripe()].RLock()
				err := s.readObject(id, &m, l, off, p)
				s.locks[id.stripe()].RUnlock()
				if err != nil {
					return false, err
				}
				h.Write(p)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, [32]byte{}, 0, fmt.Errorf("chunkstore: digest pg %s: %w", pg, err)
	}
	copy(sum[:], h.Sum(nil))
	return apply, sum, objects, nil
}
