package nfsgw

import (
	"os"
)

// File is a file opened through FS. A file that was written or truncated
// is fsynced by Close (go-nfs opens and closes the file around a SETATTR of
// the size, so the reply acknowledges a durable size), and by Sync. The
// gateway's READ, WRITE and COMMIT do not use File (see openFiles). Not
// safe for concurrent use.
type File struct {
	*os.File
	name  string
	dirty bool
}

// Name returns the name the file was opened with.
func (f *File) Name() string { return f.name }

// Write writes p at the current offset.
func (f *File) Write(p []byte) (int, error) {
	f.dirty = true
	return f.File.Write(p)
}

// WriteAt writes p at off.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	f.dirty = true
	return f.File.WriteAt(p, off)
}

// Truncate changes the file's size.
func (f *File) Truncate(size int64) error {
	f.dirty = true
	return f.File.Truncate(size)
}

// Lock is a no-op: the gateway does not offer NLM locks.
func (f *File) Lock() error { return nil }

// Unlock is a no-op.
func (f *File) Unlock() error { return nil }

// Sync makes what was written durable.
func (f *File) Sync() error {
	if err := f.File.Sync(); err != nil {
		return err
	}
	f.dirty = false
	return nil
}

// Close fsyncs a written file and closes it. An error from the fsync is
// returned (and the write must not be acknowledged).
func (f *File) Close() error {
	if f.dirty {
		if err := f.File.Sync(); err != nil {
			_ = f.File.Close()
			return err
		}
	}
	return f.File.Close()
}
