package nfsgw

import (
	"golang.org/x/sys/unix"
)

// Syncing a cached descriptor.
//
// The kernel reports a writeback error once per open descriptor, to the
// first fsync on it that checks, and drops the pages that failed. Every
// WRITE and COMMIT of a file shares one cached descriptor, so one call's
// fsync can be told of an error about another call's data, and the other
// call's own fsync then finds nothing to write and succeeds: acknowledged
// FILE_SYNC data would be lost. Syncs of a descriptor therefore pass a
// gate (openFile.syncMu): they run side by side under its read lock and
// count a failure (openFile.failures, and a new write verifier through
// syncFailed) before they leave it; a caller whose sync succeeded takes
// the write lock to wait for the syncs beside it before it trusts its
// own (syncFailures).

// sync fsyncs f's descriptor (fdatasync when dataOnly). A failure is
// counted on f and reported to c.syncFailed before the sync leaves f's
// gate.
func (c *openFiles) sync(f *openFile, dataOnly bool) error {
	f.syncMu.RLock()
	defer f.syncMu.RUnlock()
	f.unsynced.Store(false) // writes done from here on set it again
	err := c.fsync(f.fd, dataOnly)
	if err != nil {
		f.failures.Add(1)
		c.syncFailed(err)
	}
	return err
}

// syncFailures returns how many syncs of f failed, once every sync of f
// running now has finished (and so counted its failure).
func (f *openFile) syncFailures() uint64 {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	return f.failures.Load()
}

// closeFile closes f's descriptor, syncing it first if it was written
// since its last sync (UNSTABLE writes with no COMMIT yet): a writeback
// error would otherwise be reported to no descriptor of ours, and a
// later COMMIT on a new descriptor could succeed without the data. A
// failure changes the write verifier (c.syncFailed), so clients send
// their uncommitted writes again.
func (c *openFiles) closeFile(f *openFile) {
	if f.unsynced.Load() {
		_ = c.sync(f, false)
	}
	unix.Close(f.fd)
}

// syncFD is unix.Fsync, or unix.Fdatasync when dataOnly.
func syncFD(fd int, dataOnly bool) error {
	if dataOnly {
		return unix.Fdatasync(fd)
	}
	return unix.Fsync(fd)
}
