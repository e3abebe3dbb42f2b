//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package chunkstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const lockName = "chunkstore.lock"

// lockDir takes an exclusive flock on dir's lock file. flock is per open file
// description, so a second Open in the same process is refused as well.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: open %q: lock file: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another process (or another Store in this one) uses directory %q", ErrLocked, dir)
		}
		return nil, fmt.Errorf("chunkstore: open %q: lock: %w", dir, err)
	}
	return f, nil
}

// badgerLockHeld reports whether someone holds badger's own lock: badger
// flocks the directory itself. Open asks after badger.Open failed, because
// badger's lock error is text only (y.Wrapf drops the errno).
func badgerLockHeld(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close() // closing the descriptor releases the flock
}

// allocatedBytes is the space fi's file occupies on disk.
func allocatedBytes(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
