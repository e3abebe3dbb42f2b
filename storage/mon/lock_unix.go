//go:build unix

package mon

import (
	"errors"
	"os"
	"syscall"
)

// probeDBLock reports errDBLocked if another open file description holds
// bbolt's flock on path. A missing file is not an error.
func probeDBLock(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errDBLocked
	}
	if err != nil {
		return err
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
