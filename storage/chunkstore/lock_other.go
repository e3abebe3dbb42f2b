//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package chunkstore

import "os"

// lockDir is a no-op where flock is unavailable: badger's own directory lock
// still refuses a second opener, but its error is not classified as ErrLocked.
func lockDir(string) (*os.File, error) { return nil, nil }

func unlockDir(*os.File) error { return nil }

func allocatedBytes(fi os.FileInfo) int64 { return fi.Size() }

func badgerLockHeld(string) bool { return false }
