package chunkstore

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// objectSyncer makes a checkpoint's object files and directories durable
// with one syncfs(2) on the filesystem that holds them, instead of an
// fsync per file: with thousands of objects written between checkpoints,
// per-file fsyncs (each open, flush, journal commit and close) were a fifth
// of an OSD's CPU under random writes. Ceph's FileStore made the same
// choice for its sync cycle.
//
// syncfs writes every dirty page of that filesystem. In a deployment it is
// the OSD's own device; where several OSDs or other programs share it
// (tsumiki up, tests) each checkpoint also writes their dirty data, which
// is correct and costs only time. The descriptor stays open for the store's
// life: syncfs reports any writeback error on the filesystem since that
// open (Linux 5.8+), even one another process saw first. An error on a file
// that is not ours then fails our checkpoint too, which stops the OSD: the
// safe side. Where syncfs is not implemented it falls back to fsync per
// path.
type objectSyncer struct {
	root string
	dir  *os.File // open on root; nil after a refusal: fsync per path
}

func openObjectSyncer(root string) (*objectSyncer, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	return &objectSyncer{root: root, dir: f}, nil
}

// sync makes files and dirs (relative to root) durable.
func (o *objectSyncer) sync(files, dirs []string) error {
	if len(files) == 0 && len(dirs) == 0 {
		return nil
	}
	if o.dir != nil {
		err := unix.Syncfs(int(o.dir.Fd()))
		if !errors.Is(err, unix.ENOSYS) {
			if err != nil {
				return fmt.Errorf("syncfs %s: %w", o.root, err)
			}
			return nil
		}
		_ = o.dir.Close()
		o.dir = nil
	}
	return syncEach(o.root, files, dirs)
}

func (o *objectSyncer) close() error {
	if o.dir == nil {
		return nil
	}
	return o.dir.Close()
}

// fdatasync makes f's data (and the size that reads it) durable.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// startWriteback asks the kernel to start writing f's dirty pages in
// [off, off+n) now, without waiting: a later fdatasync then mostly waits
// for I/O already under way. Advice only, so errors are ignored (the
// fdatasync reports them).
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
