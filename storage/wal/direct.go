package wal

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockAlign is the unit of direct IO: every commit starts at a multiple
// of it in its segment, and its buffer starts at such an address.
const blockAlign = 4096

// Commits are written with O_DIRECT|O_DSYNC where the filesystem allows it:
// one pwrite that bypasses the page cache and returns once the bytes are
// on the device. Copying through the page cache and writing it back costs
// more CPU than the rest of a commit, and on virtualised disks it is also
// several times slower. Where O_DIRECT is refused (tmpfs), the log falls
// back to buffered writes and fdatasync.

// openDirect opens path for direct, synchronous writes; nil when the
// filesystem does not support it.
func openDirect(path string) *os.File {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_DSYNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), path)
}

// paddedLen is how much of the segment a commit of n bytes takes: n rounded
// up to a multiple of blockAlign, with at least recHeader zero bytes of
// padding when there is any, so that replay reads a zero length at the end
// of every commit that does not end on a block boundary.
func paddedLen(n int64) int64 {
	p := alignUp(n)
	if pad := p - n; pad > 0 && pad < recHeader {
		p += blockAlign
	}
	return p
}

// zeroStep is how far ahead of its tail the log writes zeros. A segment is
// preallocated, but preallocated blocks are "unwritten" until written: a
// synchronous write into them must also make the extent's change of state
// durable (a journal commit, or on ext4 without a journal as here, a
// metadata block write), which doubled a 4 KiB O_DSYNC write here (204 µs
// against 97 µs over written blocks, ext4 on virtio). Writing zeros
// ahead in 1 MiB steps pays that once per step; zeros past the tail are
// what replay already reads as the end of the log.
//
// Only commits smaller than zeroBelow write zeros ahead: those are the
// synchronous small writes the zeros are for. A large commit pays the
// extent's change of state once over many blocks, and zeros behind it
// would double the bytes a stream of large commits (1 MiB client writes)
// puts on the device: each would write its data and then most of a
// zeroStep of zeros that the next commit overwrites.
const (
	zeroStep  = 1 << 20
	zeroBelow = 128 << 10
)

// alignTo rounds n up to a multiple of step, a power of two.
func alignTo(n, step int64) int64 { return (n + step - 1) &^ (step - 1) }

// alignUp rounds n up to a multiple of blockAlign.
func alignUp(n int64) int64 { return (n + blockAlign - 1) &^ (blockAlign - 1) }

// scratch returns a buffer of n bytes starting at an address aligned to
// blockAlign, reusing *buf when it is large enough.
func scratch(buf *[]byte, n int) []byte {
	if cap(*buf) >= n {
		return (*buf)[:n]
	}
	raw := make([]byte, n+blockAlign)
	off := int(uintptr(unsafe.Pointer(&raw[0])) & (blockAlign - 1))
	if off != 0 {
		off = blockAlign - off
	}
	*buf = raw[off : off+n : off+n]
	return *buf
}

// aligned reports whether p starts at a blockAlign boundary.
func aligned(p []byte) bool {
	return cap(p) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(p)))&(blockAlign-1) == 0
}
