//go:build !linux

package chunkstore

import (
	"errors"
	"os"
)

// openDirect: no O_DIRECT here; placed writes go through the page cache.
func openDirect(string) (*os.File, error) {
	return nil, errors.New("chunkstore: direct writes are supported on Linux only")
}
