package chunkstore

import (
	"fmt"
	"sync"
	"unsafe"

	"go.uber.org/zap"
)

// Direct slot writes. A replica that does not serve reads (a raft
// follower: reads go to the leader) has no use for the bytes of a large
// write in its page cache, and copying them there is most of what a
// buffered pwrite costs: it writes them with O_DIRECT instead, from an
// aligned copy, on a second descriptor of the object file. The page
// cache stays coherent (the kernel drops cached pages of a range written
// directly), and a replica that becomes leader reads such blocks from the
// device once.

// directAlign is the alignment of O_DIRECT buffers, offsets and lengths:
// slots are whole blocks (at least 4 KiB) at 4 KiB-aligned offsets.
const directAlign = 4096

// directChunk is the most written by one direct pwrite (and the size of
// the pooled aligned buffers).
const directChunk = 1 << 20

// newDirectBufs returns a pool of aligned directChunk buffers (*[]byte).
func newDirectBufs() *sync.Pool {
	return &sync.Pool{New: func() any {
		raw := make([]byte, directChunk+directAlign)
		off := int(-uintptr(unsafe.Pointer(&raw[0])) & (directAlign - 1))
		b := raw[off : off+directChunk : off+directChunk]
		return &b
	}}
}

// writeDirect writes data at off through b.direct, the O_DIRECT descriptor
// of b's file, in aligned chunks. off and len(data) are multiples of
// directAlign.
func (b *blockIO) writeDirect(data []byte, off int64) error {
	bp := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(bp)
	for len(data) > 0 {
		n := copy(*bp, data)
		if _, err := b.direct.WriteAt((*bp)[:n], off); err != nil {
			return fmt.Errorf("direct write: %w", err)
		}
		data, off = data[n:], off+int64(n)
	}
	return nil
}

// refuseDirect turns direct slot writes off for the store's life: the file
// system refused one with err (EINVAL: no O_DIRECT, or an alignment whole
// blocks do not give). Large writes then go through the page cache.
func (s *Store) refuseDirect(err error) {
	if !s.noDirect.Swap(true) {
		s.log.Warn("chunkstore: the file system refuses direct writes; large writes go through the page cache", zap.Error(err))
	}
}
