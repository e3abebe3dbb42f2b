//go:build !linux

package chunkstore

import (
	"fmt"
	"os"
	"syscall"
)

// openDirect: no O_DIRECT here (EINVAL, as a file system without it
// answers on Linux); placed writes go through the page cache.
func openDirect(string) (*os.File, error) {
	return nil, fmt.Errorf("chunkstore: direct writes are supported on Linux only: %w", syscall.EINVAL)
}
