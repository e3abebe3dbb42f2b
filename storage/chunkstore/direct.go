package chunkstore

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Runs of whole blocks of at least directMin are written with O_DIRECT
// where the filesystem allows it:
// the data is not copied into the page cache (which costs CPU and, on
// virtualised disks, bandwidth), and checkpoints only have to flush. The
// checksum table is small and unaligned, so it goes through the page cache.
// Reads go through the page cache; the kernel keeps it coherent with
// direct writes.

const directAlign = 4096

// directMin is the smallest run of blocks written directly. A direct write
// waits for the device; for a few blocks the copy into the page cache is
// cheaper and lets the next operation go on at once (the checkpoint flushes
// them).
const directMin = 64 << 10

// openDirect opens path for direct writes; nil when refused.
func openDirect(path string) *os.File {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), path)
}

// alignedScratch returns n bytes at an address aligned for direct IO,
// reusing *buf when it is large enough.
func alignedScratch(buf *[]byte, n int) []byte {
	if cap(*buf) >= n {
		return (*buf)[:n]
	}
	raw := make([]byte, n+directAlign)
	off := int(uintptr(unsafe.Pointer(&raw[0])) & (directAlign - 1))
	if off != 0 {
		off = directAlign - off
	}
	*buf = raw[off : off+n : off+n]
	return *buf
}
