package chunkstore

import (
	"fmt"
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

// directBufs keeps aligned directChunk buffers for reuse. Unlike a
// sync.Pool, which a garbage collection empties (under 1 MiB writes one
// runs every few dozen milliseconds, and the buffers were 5 % of what the
// OSD allocated), it keeps up to cap(free) of them for the store's life.
// Safe for concurrent use.
type directBufs struct{ free chan []byte }

// directBufsKept is how many buffers a store keeps: one per concurrent
// direct write (an OSD's loop writes one at a time), with room to spare.
const directBufsKept = 4

func newDirectBufs() *directBufs { return &directBufs{free: make(chan []byte, directBufsKept)} }

// get returns a kept buffer, or a new one.
func (d *directBufs) get() []byte {
	select {
	case b := <-d.free:
		return b
	default:
	}
	raw := make([]byte, directChunk+directAlign)
	off := int(-uintptr(unsafe.Pointer(&raw[0])) & (directAlign - 1))
	return raw[off : off+directChunk : off+directChunk]
}

// put keeps b if there is room.
func (d *directBufs) put(b []byte) {
	select {
	case d.free <- b:
	default:
	}
}

// writeDirect writes data at off through b.direct, the O_DIRECT descriptor
// of b's file, in aligned chunks. off and len(data) are multiples of
// directAlign.
func (b *blockIO) writeDirect(data []byte, off int64) error {
	buf := b.bufs.get()
	defer b.bufs.put(buf)
	for len(data) > 0 {
		n := copy(buf, data)
		if _, err := b.direct.WriteAt(buf[:n], off); err != nil {
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
